//! Records to Arrow. The schema is derived from `record::FIELDS`, plus a `symbol` string column
//! resolved from the pipeline's symbol table.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
    UInt64Array, UInt8Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use twinfeed_features::record::{FieldType, Record, FIELDS, NO_SYMBOL};

fn data_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::U8 => DataType::UInt8,
        FieldType::U16 => DataType::UInt16,
        FieldType::U32 => DataType::UInt32,
        FieldType::U64 => DataType::UInt64,
        FieldType::I64 => DataType::Int64,
        FieldType::F64 => DataType::Float64,
    }
}

/// The Arrow schema of feature batches: every record field in layout order, then `symbol`.
pub fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = FIELDS
        .iter()
        .map(|f| Field::new(f.name, data_type(f.ty), false))
        .collect();
    fields.push(Field::new("symbol", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// Declares [`Columns`]: one growable vector per record field, in layout order.
macro_rules! columns {
    ($($field:ident: $ty:ty => $array:ident),* $(,)?) => {
        /// A record batch under construction, one vector per field. Records arrive in chunks
        /// small enough to stay in cache while each field is copied out of them, which is
        /// what makes the row-to-column transpose cheap; the vectors then become Arrow
        /// buffers without a copy.
        pub struct Columns {
            $($field: Vec<$ty>,)*
        }

        impl Columns {
            pub fn with_capacity(rows: usize) -> Self {
                Columns { $($field: Vec::with_capacity(rows),)* }
            }

            pub fn len(&self) -> usize {
                self.kind.len()
            }

            pub fn extend(&mut self, records: &[Record]) {
                $(self.$field.extend(records.iter().map(|r| r.$field));)*
            }

            /// The batch, resolving symbol ids through `symbols`.
            pub fn finish(self, symbols: &[&str], schema: SchemaRef) -> RecordBatch {
                let symbol = symbol_column(&self.symbol_id, symbols);
                let columns: Vec<ArrayRef> = vec![
                    $(Arc::new($array::from(self.$field)) as ArrayRef,)*
                    Arc::new(symbol),
                ];
                debug_assert_eq!(columns.len(), FIELDS.len() + 1);
                RecordBatch::try_new(schema, columns).expect("columns match the schema")
            }
        }
    };
}

columns! {
    kind: u8 => UInt8Array,
    flags: u8 => UInt8Array,
    symbol_id: u16 => UInt16Array,
    reserved: u32 => UInt32Array,
    seq: u64 => UInt64Array,
    line: u64 => UInt64Array,
    local_ns: i64 => Int64Array,
    exchange_ns: i64 => Int64Array,
    update_id: u64 => UInt64Array,
    bid_px: f64 => Float64Array,
    bid_qty: f64 => Float64Array,
    ask_px: f64 => Float64Array,
    ask_qty: f64 => Float64Array,
    mid: f64 => Float64Array,
    spread: f64 => Float64Array,
    spread_bps: f64 => Float64Array,
    microprice: f64 => Float64Array,
    imbalance: f64 => Float64Array,
    trade_px: f64 => Float64Array,
    trade_qty: f64 => Float64Array,
    trade_flow: f64 => Float64Array,
    flow_imbalance: f64 => Float64Array,
    vwap: f64 => Float64Array,
    volume: f64 => Float64Array,
    ret_ewma: f64 => Float64Array,
    realized_vol: f64 => Float64Array,
    count: u64 => UInt64Array,
}

fn symbol_column(ids: &[u16], symbols: &[&str]) -> StringArray {
    let mut symbol = StringBuilder::with_capacity(ids.len(), ids.len() * 8);
    for &id in ids {
        match symbols.get(id as usize) {
            Some(name) if id != NO_SYMBOL => symbol.append_value(name),
            _ => symbol.append_null(),
        }
    }
    symbol.finish()
}
