//! How the driver reads a row ([`Columns`]) and binds owned values, and the `meta`
//! table's reads and writes.

use super::*;

impl Columns for Row {
    type Error = tokio_postgres::Error;
    fn text(&self, i: usize) -> PgResult<String> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> PgResult<Option<String>> {
        self.try_get(i)
    }
    /// Counts are `INTEGER` columns, everything else `BIGINT`.
    fn opt_int(&self, i: usize) -> PgResult<Option<i64>> {
        if self.columns()[i].type_() == &Type::INT4 {
            Ok(self.try_get::<_, Option<i32>>(i)?.map(i64::from))
        } else {
            self.try_get(i)
        }
    }
}

/// Every row of `rows` read by `read`.
pub(super) fn all<T>(rows: &[Row], read: impl Fn(&Row) -> PgResult<T>) -> PgResult<Vec<T>> {
    rows.iter().map(read).collect()
}

/// Owned values as the driver's parameters, typed as their columns.
pub(super) fn bind(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Value::Int(v) => v,
                Value::Int4(v) => v,
                Value::Text(v) => v,
            }
        })
        .collect()
}

pub(super) async fn read_meta(c: &impl deadpool_postgres::GenericClient, key: &str) -> PgResult<Option<String>> {
    Ok(c.query_opt(SQL.sql(statements::READ_META), &[&key])
        .await?
        .map(|r| r.get(0)))
}

pub(super) async fn write_meta(c: &impl deadpool_postgres::GenericClient, key: &str, value: &str) -> PgResult<()> {
    c.execute(SQL.sql(statements::WRITE_META), &[&key, &value])
        .await
        .map(|_| ())
}
