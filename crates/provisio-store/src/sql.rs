//! The values that cross the store boundary: what a statement binds and
//! what a row holds, the same for every backend.
//!
//! The statements are written once, in the SQL both backends speak (`?` or
//! `?N` placeholders, integers for booleans, text for JSON, Unix
//! milliseconds for times), and each backend binds these values and reads
//! its rows back into them. A typed NULL keeps its kind, because PostgreSQL
//! types a statement's parameters from what the client says they are.

use std::sync::Arc;

use crate::StoreError;

/// The kind of a value, which a NULL keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What can be bound as a statement's parameter.
pub trait Bind {
    /// The kind a NULL of this type has.
    const KIND: Kind;
    /// The value bound.
    fn bind(&self) -> SqlValue;
}

macro_rules! bind_int {
    ($($ty:ty),*) => {$(
        impl Bind for $ty {
            const KIND: Kind = Kind::Int;
            fn bind(&self) -> SqlValue {
                // Counts and limits are far below i64::MAX; saturate rather than wrap.
                SqlValue::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
bind_int!(i64, i32, u16, u32, u64, usize);

impl Bind for bool {
    const KIND: Kind = Kind::Int;
    fn bind(&self) -> SqlValue {
        SqlValue::Int(i64::from(*self))
    }
}

impl Bind for f64 {
    const KIND: Kind = Kind::Real;
    fn bind(&self) -> SqlValue {
        SqlValue::Real(*self)
    }
}

impl Bind for str {
    const KIND: Kind = Kind::Text;
    fn bind(&self) -> SqlValue {
        SqlValue::Text(self.to_owned())
    }
}

impl Bind for String {
    const KIND: Kind = Kind::Text;
    fn bind(&self) -> SqlValue {
        SqlValue::Text(self.clone())
    }
}

impl Bind for [u8] {
    const KIND: Kind = Kind::Blob;
    fn bind(&self) -> SqlValue {
        SqlValue::Blob(self.to_vec())
    }
}

impl Bind for Vec<u8> {
    const KIND: Kind = Kind::Blob;
    fn bind(&self) -> SqlValue {
        SqlValue::Blob(self.clone())
    }
}

impl<T: Bind + ?Sized> Bind for &T {
    const KIND: Kind = T::KIND;
    fn bind(&self) -> SqlValue {
        (**self).bind()
    }
}

impl<T: Bind> Bind for Option<T> {
    const KIND: Kind = T::KIND;
    fn bind(&self) -> SqlValue {
        match self {
            Some(value) => value.bind(),
            None => SqlValue::Null(T::KIND),
        }
    }
}

/// A statement's parameters: a tuple or array of [`Bind`] values, or
/// [`params!`](crate::params).
pub trait Params {
    /// The values, in placeholder order.
    fn values(self) -> Vec<SqlValue>;
}

impl Params for Vec<SqlValue> {
    fn values(self) -> Vec<SqlValue> {
        self
    }
}

impl<T: Bind, const N: usize> Params for [T; N] {
    fn values(self) -> Vec<SqlValue> {
        self.iter().map(Bind::bind).collect()
    }
}

macro_rules! params_tuple {
    ($($name:ident),*) => {
        impl<$($name: Bind),*> Params for ($($name,)*) {
            #[allow(non_snake_case)]
            fn values(self) -> Vec<SqlValue> {
                let ($($name,)*) = self;
                vec![$($name.bind()),*]
            }
        }
    };
}
params_tuple!();
params_tuple!(A);
params_tuple!(A, B);
params_tuple!(A, B, C);
params_tuple!(A, B, C, D);
params_tuple!(A, B, C, D, E);
params_tuple!(A, B, C, D, E, F);

/// Parameters of different types, in placeholder order.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        ::std::vec![$($crate::sql::Bind::bind(&$value)),*]
    };
}

/// One row read: its columns' names (shared by every row of a statement)
/// and values.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl Row {
    /// A row of `values` under `columns`.
    pub fn new(columns: Arc<[String]>, values: Vec<SqlValue>) -> Row {
        Row { columns, values }
    }

    /// The value at a column (an index or a name), decoded.
    pub fn get<I: RowIndex, T: FromSql>(&self, index: I) -> Result<T, StoreError> {
        let at = index.position(&self.columns).ok_or_else(|| StoreError::Corrupt(format!("no column {index}")))?;
        T::from_sql(&self.values[at]).map_err(|why| StoreError::Corrupt(format!("column {index}: {why}")))
    }
}

/// A column, by position or name.
pub trait RowIndex: std::fmt::Display + Copy {
    /// Where the column is.
    fn position(&self, columns: &[String]) -> Option<usize>;
}

impl RowIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
}

impl RowIndex for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

/// What a column's value decodes into.
pub trait FromSql: Sized {
    /// The value, or why it is not one.
    fn from_sql(value: &SqlValue) -> Result<Self, String>;
}

fn unexpected(value: &SqlValue, wanted: &str) -> String {
    format!("expected {wanted}, found {value:?}")
}

impl FromSql for i64 {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Int(i) => Ok(*i),
            other => Err(unexpected(other, "an integer")),
        }
    }
}

impl FromSql for i32 {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        i32::try_from(i64::from_sql(value)?).map_err(|e| e.to_string())
    }
}

impl FromSql for u32 {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        u32::try_from(i64::from_sql(value)?).map_err(|e| e.to_string())
    }
}

impl FromSql for usize {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        usize::try_from(i64::from_sql(value)?).map_err(|e| e.to_string())
    }
}

impl FromSql for bool {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        Ok(i64::from_sql(value)? != 0)
    }
}

impl FromSql for f64 {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Real(r) => Ok(*r),
            // Averages of integers come back as integers from SQLite.
            SqlValue::Int(i) => Ok(*i as f64),
            other => Err(unexpected(other, "a number")),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Text(s) => Ok(s.clone()),
            other => Err(unexpected(other, "text")),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Blob(b) => Ok(b.clone()),
            other => Err(unexpected(other, "bytes")),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Null(_) => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

/// `expr IN (?3, ?4, ?5)` for `n` values bound one by one from parameter
/// number `first` on (numbered, so where the list sits in the statement
/// never shifts the others' numbers). Both backends read it the same way;
/// over an empty list it is false, as SQL's own subquery form would be.
pub fn in_list(expr: &str, first: usize, n: usize) -> String {
    if n == 0 { "1 = 0".to_owned() } else { format!("{expr} IN ({})", numbered(first, n)) }
}

/// `expr NOT IN (?3, ?4, ?5)`; true over an empty list.
pub fn not_in_list(expr: &str, first: usize, n: usize) -> String {
    if n == 0 { "1 = 1".to_owned() } else { format!("{expr} NOT IN ({})", numbered(first, n)) }
}

fn numbered(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_keeps_its_kind_and_rows_decode_by_name_or_position() {
        let none: Option<i64> = None;
        assert_eq!(
            crate::params![none, "a", Some(3_i64), true],
            [SqlValue::Null(Kind::Int), SqlValue::Text("a".into()), SqlValue::Int(3), SqlValue::Int(1)]
        );
        let row = Row::new(
            Arc::from(vec!["id".to_owned(), "note".to_owned()]),
            vec![SqlValue::Int(7), SqlValue::Null(Kind::Text)],
        );
        assert_eq!(row.get::<_, i64>("id").unwrap(), 7);
        assert_eq!(row.get::<_, Option<String>>(1).unwrap(), None);
        assert!(row.get::<_, String>("note").unwrap_err().to_string().contains("column note"));
        assert!(row.get::<_, i64>("missing").is_err());
        assert_eq!(in_list("id", 2, 3), "id IN (?2, ?3, ?4)");
        assert_eq!(in_list("id", 2, 0), "1 = 0");
        assert_eq!(not_in_list("id", 1, 0), "1 = 1");
    }
}
