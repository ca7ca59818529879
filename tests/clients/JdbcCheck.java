// The PostgreSQL JDBC driver (what Metabase, DBeaver and DataGrip connect with) against a running
// server: its DatabaseMetaData calls, a plain query with exact numerics and Postgres column
// labels, and a prepared statement past the driver's server-side prepare threshold.
// Usage: java -cp postgresql.jar JdbcCheck.java jdbc:postgresql://host:port/db user password
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class JdbcCheck {
  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  static List<String> column(ResultSet rs, String name) throws SQLException {
    List<String> values = new ArrayList<>();
    while (rs.next()) values.add(rs.getString(name));
    return values;
  }

  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
      DatabaseMetaData m = c.getMetaData();
      check(m.getDatabaseMajorVersion() >= 14, "server version " + m.getDatabaseProductVersion());

      List<String> schemas = column(m.getSchemas(), "TABLE_SCHEM");
      check(schemas.containsAll(List.of("finops", "kpi", "providers")), "schemas " + schemas);

      ResultSet tables = m.getTables(null, "kpi", "%", new String[] {"MATERIALIZED VIEW", "VIEW"});
      Map<String, String> kinds = new HashMap<>();
      while (tables.next()) kinds.put(tables.getString("TABLE_NAME"), tables.getString("TABLE_TYPE"));
      check("MATERIALIZED VIEW".equals(kinds.get("daily")), "kpi.daily is a materialized view: " + kinds);
      check("VIEW".equals(kinds.get("summary")), "kpi.summary is a view: " + kinds);

      ResultSet columns = m.getColumns(null, "finops", "usage_events", "%");
      Map<String, String> types = new HashMap<>();
      while (columns.next()) types.put(columns.getString("COLUMN_NAME"), columns.getString("TYPE_NAME"));
      check("text".equals(types.get("event_id")), "event_id type " + types.get("event_id"));
      check("timestamptz".equals(types.get("ts")), "ts type " + types.get("ts"));
      check("int8".equals(types.get("input_tokens")), "input_tokens type " + types.get("input_tokens"));

      // No keys are declared: empty answers, not errors.
      check(column(m.getPrimaryKeys(null, "finops", "usage_events"), "COLUMN_NAME").isEmpty(), "no primary key");
      check(column(m.getImportedKeys(null, "finops", "usage_events"), "FK_NAME").isEmpty(), "no foreign keys");
      check(column(m.getTypeInfo(), "TYPE_NAME").contains("numeric"), "type info lists numeric");

      try (Statement s = c.createStatement();
           ResultSet rs = s.executeQuery(
               "SELECT team, sum(cost), count(*) FROM finops.usage WHERE team IS NOT NULL "
                   + "GROUP BY team ORDER BY 2 DESC LIMIT 1")) {
        ResultSetMetaData md = rs.getMetaData();
        check(md.getColumnLabel(2).equals("sum") && md.getColumnLabel(3).equals("count"),
            "labels " + md.getColumnLabel(2) + ", " + md.getColumnLabel(3));
        check(rs.next(), "a row");
        BigDecimal spend = rs.getBigDecimal("sum");
        check(spend.signum() > 0 && spend.scale() > 2, "exact spend " + spend);
      }

      try (PreparedStatement p = c.prepareStatement(
          "SELECT count(*) FROM finops.usage WHERE team = ? AND ts >= ?")) {
        long first = -1;
        for (int i = 0; i < 7; i++) {
          p.setString(1, "search");
          p.setTimestamp(2, Timestamp.valueOf("2000-01-01 00:00:00"));
          try (ResultSet rs = p.executeQuery()) {
            check(rs.next(), "a count");
            long n = rs.getLong(1);
            check(n > 0 && (first < 0 || n == first), "count " + n + " then " + first);
            first = n;
          }
        }
      }

      try (Statement s = c.createStatement()) {
        s.executeQuery("SELECT * FROM no_such_table");
        check(false, "no error for an unknown table");
      } catch (SQLException e) {
        check("42P01".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
      }
    }
    System.out.println("jdbc ok");
  }
}
