//! Conversions between the WIT's values and PostgreSQL's.

use bytes::{BufMut, BytesMut};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use crate::outbound::spin::postgres::postgres::{
    DbDataType, DbValue, Error, Interval, ParameterValue, QueryError, RangeBoundKind,
};

pub(super) fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

pub(super) fn convert_row(row: &Row) -> Result<Vec<DbValue>, Error> {
    (0..row.len())
        .map(|index| {
            let column = &row.columns()[index];
            convert_value(row, index, column.type_()).map_err(|error| {
                Error::QueryFailed(QueryError::Text(format!(
                    "column {:?} of type {}: {error}",
                    column.name(),
                    column.type_()
                )))
            })
        })
        .collect()
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn convert_value(row: &Row, index: usize, ty: &Type) -> Result<DbValue, BoxError> {
    fn get<'a, T: FromSql<'a>>(
        row: &'a Row,
        index: usize,
        wrap: impl FnOnce(T) -> DbValue,
    ) -> Result<DbValue, BoxError> {
        Ok(row
            .try_get::<_, Option<T>>(index)?
            .map(wrap)
            .unwrap_or(DbValue::DbNull))
    }
    match *ty {
        Type::BOOL => get(row, index, DbValue::Boolean),
        Type::INT2 => get(row, index, DbValue::Int16),
        Type::INT4 => get(row, index, DbValue::Int32),
        Type::INT8 => get(row, index, DbValue::Int64),
        Type::FLOAT4 => get(row, index, DbValue::Floating32),
        Type::FLOAT8 => get(row, index, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, index, DbValue::Str),
        Type::BYTEA => get(row, index, DbValue::Binary),
        Type::DATE => get(row, index, |d: NaiveDate| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => get(row, index, |t: NaiveTime| DbValue::Time(time_tuple(t))),
        // Spin reads `timestamptz` as a `timestamp`, which fails: a component
        // must select such columns as text or epoch seconds, here as there.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, index, |dt: NaiveDateTime| {
            DbValue::Datetime(datetime_tuple(dt))
        }),
        Type::UUID => get(row, index, |u: uuid::Uuid| DbValue::Uuid(u.to_string())),
        Type::JSONB => get(row, index, |j: serde_json::Value| {
            DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())
        }),
        Type::NUMERIC => get(row, index, |d: rust_decimal::Decimal| {
            DbValue::Decimal(d.to_string())
        }),
        Type::INT4_RANGE => get(row, index, |r: PgRange<i32>| {
            DbValue::RangeInt32(r.bounds())
        }),
        Type::INT8_RANGE => get(row, index, |r: PgRange<i64>| {
            DbValue::RangeInt64(r.bounds())
        }),
        Type::NUM_RANGE => get(row, index, |r: PgRange<rust_decimal::Decimal>| {
            let (lower, upper) = r.bounds();
            let text = |b: Option<(rust_decimal::Decimal, RangeBoundKind)>| {
                b.map(|(value, kind)| (value.to_string(), kind))
            };
            DbValue::RangeDecimal((text(lower), text(upper)))
        }),
        Type::INT4_ARRAY => get(row, index, DbValue::ArrayInt32),
        Type::INT8_ARRAY => get(row, index, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get(row, index, |values: Vec<Option<rust_decimal::Decimal>>| {
            DbValue::ArrayDecimal(
                values
                    .into_iter()
                    .map(|v| v.map(|d| d.to_string()))
                    .collect(),
            )
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get(row, index, DbValue::ArrayStr)
        }
        Type::INTERVAL => get(row, index, |i: PgInterval| DbValue::Interval(i.0)),
        _ => get(row, index, |raw: RawValue| DbValue::Unsupported(raw.0)),
    }
}

fn time_tuple(t: NaiveTime) -> (u8, u8, u8, u32) {
    (
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    )
}

fn datetime_tuple(dt: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (h, m, s, ns) = time_tuple(dt.time());
    (dt.year(), dt.month() as u8, dt.day() as u8, h, m, s, ns)
}

/// A guest parameter, converted to a Rust value `tokio-postgres` can send.
#[derive(Debug)]
pub(super) enum Param {
    Bool(bool),
    Char(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Timestamp(chrono::DateTime<chrono::Utc>),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    Decimal(rust_decimal::Decimal),
    RangeI32(PgRange<i32>),
    RangeI64(PgRange<i64>),
    RangeDecimal(PgRange<rust_decimal::Decimal>),
    ArrayI32(Vec<Option<i32>>),
    ArrayI64(Vec<Option<i64>>),
    ArrayDecimal(Vec<Option<rust_decimal::Decimal>>),
    ArrayStr(Vec<Option<String>>),
    Interval(PgInterval),
    Null,
}

impl TryFrom<ParameterValue> for Param {
    type Error = Error;

    /// A value that cannot be represented is the guest's fault: `bad-parameter`.
    fn try_from(value: ParameterValue) -> Result<Self, Error> {
        let bad = |what: &str| Error::BadParameter(what.to_owned());
        let decimal = |text: &str| {
            text.parse::<rust_decimal::Decimal>()
                .map_err(|e| Error::BadParameter(format!("invalid decimal {text:?}: {e}")))
        };
        Ok(match value {
            ParameterValue::Boolean(v) => Param::Bool(v),
            ParameterValue::Int8(v) => Param::Char(v),
            ParameterValue::Int16(v) => Param::I16(v),
            ParameterValue::Int32(v) => Param::I32(v),
            ParameterValue::Int64(v) => Param::I64(v),
            ParameterValue::Floating32(v) => Param::F32(v),
            ParameterValue::Floating64(v) => Param::F64(v),
            ParameterValue::Str(v) => Param::Str(v),
            ParameterValue::Binary(v) => Param::Bytes(v),
            ParameterValue::Date((y, m, d)) => Param::Date(
                NaiveDate::from_ymd_opt(y, m.into(), d.into())
                    .ok_or_else(|| bad("invalid date"))?,
            ),
            ParameterValue::Time((h, m, s, ns)) => Param::Time(
                NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid time"))?,
            ),
            ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
                let date = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                    .ok_or_else(|| bad("invalid datetime"))?;
                let time = NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid datetime"))?;
                Param::DateTime(NaiveDateTime::new(date, time))
            }
            ParameterValue::Timestamp(secs) => Param::Timestamp(
                chrono::DateTime::from_timestamp(secs, 0)
                    .ok_or_else(|| bad("invalid timestamp"))?,
            ),
            ParameterValue::Uuid(text) => Param::Uuid(
                text.parse()
                    .map_err(|e| Error::BadParameter(format!("invalid uuid {text:?}: {e}")))?,
            ),
            ParameterValue::Jsonb(bytes) => Param::Json(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::BadParameter(format!("invalid JSON: {e}")))?,
            ),
            ParameterValue::Decimal(text) => Param::Decimal(decimal(&text)?),
            ParameterValue::RangeInt32((lower, upper)) => Param::RangeI32(PgRange {
                lower,
                upper,
                empty: false,
            }),
            ParameterValue::RangeInt64((lower, upper)) => Param::RangeI64(PgRange {
                lower,
                upper,
                empty: false,
            }),
            ParameterValue::RangeDecimal((lower, upper)) => {
                let convert = |bound: Option<(String, RangeBoundKind)>| {
                    bound
                        .map(|(text, kind)| Ok((decimal(&text)?, kind)))
                        .transpose()
                };
                Param::RangeDecimal(PgRange {
                    lower: convert(lower)?,
                    upper: convert(upper)?,
                    empty: false,
                })
            }
            ParameterValue::ArrayInt32(v) => Param::ArrayI32(v),
            ParameterValue::ArrayInt64(v) => Param::ArrayI64(v),
            ParameterValue::ArrayDecimal(v) => Param::ArrayDecimal(
                v.iter()
                    .map(|item| item.as_deref().map(decimal).transpose())
                    .collect::<Result<_, _>>()?,
            ),
            ParameterValue::ArrayStr(v) => Param::ArrayStr(v),
            ParameterValue::Interval(v) => Param::Interval(PgInterval(v)),
            ParameterValue::DbNull => Param::Null,
        })
    }
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Bool(v) => v.to_sql_checked(ty, out),
            Param::Char(v) => v.to_sql_checked(ty, out),
            Param::I16(v) => v.to_sql_checked(ty, out),
            Param::I32(v) => v.to_sql_checked(ty, out),
            Param::I64(v) => v.to_sql_checked(ty, out),
            Param::F32(v) => v.to_sql_checked(ty, out),
            Param::F64(v) => v.to_sql_checked(ty, out),
            Param::Str(v) => v.to_sql_checked(ty, out),
            Param::Bytes(v) => v.to_sql_checked(ty, out),
            Param::Date(v) => v.to_sql_checked(ty, out),
            Param::Time(v) => v.to_sql_checked(ty, out),
            Param::DateTime(v) => v.to_sql_checked(ty, out),
            Param::Timestamp(v) => v.to_sql_checked(ty, out),
            Param::Uuid(v) => v.to_sql_checked(ty, out),
            Param::Json(v) => v.to_sql_checked(ty, out),
            Param::Decimal(v) => v.to_sql_checked(ty, out),
            Param::RangeI32(v) => v.to_sql_checked(ty, out),
            Param::RangeI64(v) => v.to_sql_checked(ty, out),
            Param::RangeDecimal(v) => v.to_sql_checked(ty, out),
            Param::ArrayI32(v) => v.to_sql_checked(ty, out),
            Param::ArrayI64(v) => v.to_sql_checked(ty, out),
            Param::ArrayDecimal(v) => v.to_sql_checked(ty, out),
            Param::ArrayStr(v) => v.to_sql_checked(ty, out),
            Param::Interval(v) => v.to_sql_checked(ty, out),
            Param::Null => Ok(IsNull::Yes),
        }
    }

    /// Each variant checks its own type in `to_sql`; NULL fits any column.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// PostgreSQL's `interval`: microseconds, days and months, in that order on
/// the wire.
#[derive(Debug)]
pub(super) struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("an interval is 16 bytes".into());
        }
        let (micros, rest) = raw.split_at(8);
        let (days, months) = rest.split_at(4);
        Ok(Self(Interval {
            micros: i64::from_be_bytes(micros.try_into()?),
            days: i32::from_be_bytes(days.try_into()?),
            months: i32::from_be_bytes(months.try_into()?),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

type Bound<T> = Option<(T, RangeBoundKind)>;

/// A PostgreSQL range in its binary form: a flags byte, then each present
/// bound as a length-prefixed value of the element type.
#[derive(Debug)]
pub(super) struct PgRange<T> {
    lower: Bound<T>,
    upper: Bound<T>,
    empty: bool,
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LOWER_INCLUSIVE: u8 = 0x02;
const RANGE_UPPER_INCLUSIVE: u8 = 0x04;
const RANGE_LOWER_INFINITE: u8 = 0x08;
const RANGE_UPPER_INFINITE: u8 = 0x10;

impl<T: Clone> PgRange<T> {
    /// The bounds as the WIT shows them; an empty range has none.
    fn bounds(&self) -> (Bound<T>, Bound<T>) {
        if self.empty {
            return (None, None);
        }
        (self.lower.clone(), self.upper.clone())
    }
}

fn element_type(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Range(element) => Some(element),
        _ => None,
    }
}

impl<T: ToSql + std::fmt::Debug> ToSql for PgRange<T> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let element = element_type(ty).ok_or("not a range type")?;
        let mut flags = 0;
        if self.empty {
            flags |= RANGE_EMPTY;
        }
        for (bound, inclusive, infinite) in [
            (&self.lower, RANGE_LOWER_INCLUSIVE, RANGE_LOWER_INFINITE),
            (&self.upper, RANGE_UPPER_INCLUSIVE, RANGE_UPPER_INFINITE),
        ] {
            match bound {
                None => flags |= infinite,
                Some((_, RangeBoundKind::Inclusive)) => flags |= inclusive,
                Some((_, RangeBoundKind::Exclusive)) => {}
            }
        }
        out.put_u8(flags);
        for (value, _) in [&self.lower, &self.upper].into_iter().flatten() {
            let length_at = out.len();
            out.put_i32(0);
            let start = out.len();
            value.to_sql_checked(element, out)?;
            let length = i32::try_from(out.len() - start)?;
            out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        element_type(ty).is_some_and(T::accepts)
    }

    to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for PgRange<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let element = element_type(ty).ok_or("not a range type")?;
        let (&flags, mut rest) = raw.split_first().ok_or("empty range value")?;
        let mut read_bound = |present: bool, inclusive: bool| -> Result<Bound<T>, BoxError> {
            if !present {
                return Ok(None);
            }
            let length_bytes: [u8; 4] = rest.get(..4).ok_or("truncated range")?.try_into()?;
            let length = usize::try_from(i32::from_be_bytes(length_bytes))?;
            let value = rest.get(4..4 + length).ok_or("truncated range")?;
            rest = &rest[4 + length..];
            let kind = if inclusive {
                RangeBoundKind::Inclusive
            } else {
                RangeBoundKind::Exclusive
            };
            Ok(Some((T::from_sql(element, value)?, kind)))
        };
        let empty = flags & RANGE_EMPTY != 0;
        let lower = read_bound(
            !empty && flags & RANGE_LOWER_INFINITE == 0,
            flags & RANGE_LOWER_INCLUSIVE != 0,
        )?;
        let upper = read_bound(
            !empty && flags & RANGE_UPPER_INFINITE == 0,
            flags & RANGE_UPPER_INCLUSIVE != 0,
        )?;
        Ok(Self {
            lower,
            upper,
            empty,
        })
    }

    fn accepts(ty: &Type) -> bool {
        element_type(ty).is_some_and(T::accepts)
    }
}

/// The raw bytes of a column whose type has no WIT variant.
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
