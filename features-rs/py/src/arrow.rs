//! Records to Arrow. The schema is derived from `record::FIELDS`, plus a `symbol` string column
//! resolved from the pipeline's symbol table.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
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

macro_rules! column {
    ($records:expr, $array:ident, $field:ident) => {
        Arc::new($array::from_iter_values($records.iter().map(|r| r.$field))) as ArrayRef
    };
}

/// One record batch from records, resolving symbol ids through `symbols`.
pub fn batch(records: &[Record], symbols: &[&str], schema: SchemaRef) -> RecordBatch {
    let mut symbol = StringBuilder::with_capacity(records.len(), records.len() * 8);
    for record in records {
        match symbols.get(record.symbol_id as usize) {
            Some(name) if record.symbol_id != NO_SYMBOL => symbol.append_value(name),
            _ => symbol.append_null(),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        column!(records, UInt8Array, kind),
        column!(records, UInt8Array, flags),
        column!(records, UInt16Array, symbol_id),
        column!(records, UInt32Array, reserved),
        column!(records, UInt64Array, seq),
        column!(records, UInt64Array, line),
        column!(records, Int64Array, local_ns),
        column!(records, Int64Array, exchange_ns),
        column!(records, UInt64Array, update_id),
        column!(records, Float64Array, bid_px),
        column!(records, Float64Array, bid_qty),
        column!(records, Float64Array, ask_px),
        column!(records, Float64Array, ask_qty),
        column!(records, Float64Array, mid),
        column!(records, Float64Array, spread),
        column!(records, Float64Array, spread_bps),
        column!(records, Float64Array, microprice),
        column!(records, Float64Array, imbalance),
        column!(records, Float64Array, trade_px),
        column!(records, Float64Array, trade_qty),
        column!(records, Float64Array, trade_flow),
        column!(records, Float64Array, flow_imbalance),
        column!(records, Float64Array, vwap),
        column!(records, Float64Array, volume),
        column!(records, Float64Array, ret_ewma),
        column!(records, Float64Array, realized_vol),
        column!(records, UInt64Array, count),
        Arc::new(symbol.finish()),
    ];
    debug_assert_eq!(columns.len(), FIELDS.len() + 1);
    RecordBatch::try_new(schema, columns).expect("columns match the schema")
}
