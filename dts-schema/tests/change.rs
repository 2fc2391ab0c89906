//! The schema tracker against real servers: every DDL statement runs on MariaDB, its
//! translation runs on PostgreSQL (in one transaction, as the change applier runs it), and
//! after each one the tracker's model must match MariaDB's `information_schema` and its
//! plans must match PostgreSQL's catalog. A few rows written to both before type changes
//! must read the same afterwards.
//!
//! Needs the `mariadbd` and PostgreSQL binaries installed (or `DTS_TEST_MYSQL_URL` /
//! `DTS_TEST_PG_URL`): `cargo test -p dts-schema --test change`.

use std::collections::BTreeSet;
use std::sync::Arc;

use dts_core::{Catalog, TableName};
use dts_schema::{DdlKind, SchemaOptions, SchemaTracker};

struct Servers {
    db: String,
    tracker: SchemaTracker,
}

impl Servers {
    fn new(prefix: &str) -> Self {
        let mariadb = dts_testkit::mariadb();
        let db = mariadb
            .create_unique_database(prefix)
            .expect("mariadb database");
        dts_testkit::postgres()
            .create_database(&db)
            .expect("postgres database");
        let schema = db.clone();
        let tracker = SchemaTracker::new(
            Catalog::default(),
            SchemaOptions::default(),
            Arc::new(move |t: &TableName| t.schema == schema),
        );
        Self { db, tracker }
    }

    /// Runs `sql` on MariaDB, its translation on PostgreSQL, and compares the catalogs.
    fn ddl(&mut self, sql: &str) -> DdlKind {
        dts_testkit::mariadb()
            .exec_in(&self.db, sql)
            .unwrap_or_else(|e| panic!("mariadb refused `{sql}`: {e}"));
        let outcome = self
            .tracker
            .apply_mysql_ddl(Some(&self.db), sql)
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
        if !outcome.statements.is_empty() {
            let mut batch = String::from("BEGIN;\n");
            for s in &outcome.statements {
                batch.push_str(s);
                batch.push_str(";\n");
            }
            batch.push_str("COMMIT;\n");
            dts_testkit::postgres()
                .exec_in(&self.db, &batch)
                .unwrap_or_else(|e| {
                    panic!("postgres refused the translation of `{sql}`:\n{batch}\n{e}")
                });
        }
        self.compare(sql);
        outcome.kind
    }

    fn both(&self, mysql: &str, pg: &str) {
        dts_testkit::mariadb()
            .exec_in(&self.db, mysql)
            .expect(mysql);
        self.pg(pg);
    }

    /// Runs SQL on PostgreSQL in the database's schema.
    fn pg(&self, sql: &str) -> String {
        dts_testkit::postgres()
            .query_in(
                &self.db,
                &format!("SET search_path TO \"{}\";\n{sql}", self.db),
            )
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn compare(&self, after: &str) {
        let mariadb = dts_testkit::mariadb();
        let pg = dts_testkit::postgres();

        // Columns, in the source's order, as information_schema spells them.
        let source = mariadb
            .query_in(
                &self.db,
                &format!(
                    "SELECT table_name, column_name, column_type, is_nullable FROM information_schema.columns \
                     WHERE table_schema = '{}' ORDER BY table_name, ordinal_position",
                    self.db
                ),
            )
            .unwrap();
        let mut tracked = String::new();
        for t in self.tracker.catalog().tables() {
            for c in &t.columns {
                tracked.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    t.name.name,
                    c.name,
                    c.source_type,
                    if c.nullable { "YES" } else { "NO" }
                ));
            }
        }
        // The client's batch output escapes backslashes.
        let source = source.replace("\\\\", "\\");
        assert_eq!(tracked.trim(), source.trim(), "columns after `{after}`");

        // Keys, by name and columns.
        let source = mariadb
            .query_in(
                &self.db,
                &format!(
                    "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) \
                     FROM information_schema.statistics WHERE table_schema = '{}' \
                     GROUP BY table_name, index_name ORDER BY table_name, index_name",
                    self.db
                ),
            )
            .unwrap();
        let mut keys = BTreeSet::new();
        for t in self.tracker.catalog().tables() {
            if let Some(pk) = &t.primary_key {
                keys.insert(format!(
                    "{}\tPRIMARY\t{}",
                    t.name.name,
                    pk.columns.join(",")
                ));
            }
            for i in &t.indexes {
                let cols: Vec<&str> = i.columns.iter().map(|c| c.name.as_str()).collect();
                keys.insert(format!("{}\t{}\t{}", t.name.name, i.name, cols.join(",")));
            }
        }
        let source: BTreeSet<String> = source.lines().map(str::to_string).collect();
        assert_eq!(keys, source, "keys after `{after}`");

        // Target columns and types.
        let target = pg
            .query_in(
                &self.db,
                &format!(
                    "SELECT c.relname || '|' || a.attname || '|' || format_type(a.atttypid, a.atttypmod) \
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{}' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY 1",
                    self.db
                ),
            )
            .unwrap();
        let target: BTreeSet<String> = target.lines().map(str::to_string).collect();
        let mut planned = BTreeSet::new();
        for p in self.tracker.table_plans() {
            for c in &p.columns {
                planned.insert(format!(
                    "{}|{}|{}",
                    p.target.name, c.target_name, c.target_type
                ));
            }
        }
        assert_eq!(planned, target, "target columns after `{after}`");

        // One target index per source key (foreign keys reference them).
        let target = pg
            .query_in(
                &self.db,
                &format!(
                    "SELECT count(*) FROM pg_indexes WHERE schemaname = '{}'",
                    self.db
                ),
            )
            .unwrap();
        let expected = self
            .tracker
            .catalog()
            .tables()
            .map(|t| t.indexes.len() + usize::from(t.primary_key.is_some()))
            .sum::<usize>();
        assert_eq!(
            target.trim(),
            expected.to_string(),
            "indexes after `{after}`"
        );
    }

    fn rows(&self, mysql: &str, pg: &str) -> (String, String) {
        let a = dts_testkit::mariadb().query_in(&self.db, mysql).unwrap();
        let b = self.pg(pg);
        (a.trim().replace('\t', "|"), b.trim().to_string())
    }
}

#[test]
fn ddl_sequence_on_real_servers() {
    let mut s = Servers::new("tracker");
    assert_eq!(
        s.ddl(
            "CREATE TABLE `customers` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `email` varchar(80) NOT NULL,\n  `name` varchar(40) DEFAULT NULL COMMENT 'display name',\n  `tier` enum('basic','gold') NOT NULL DEFAULT 'basic',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `email` (`email`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        DdlKind::CreateTable
    );
    s.ddl(
        "CREATE TABLE orders (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL, \
         total decimal(10,2) NOT NULL DEFAULT 0.00, note text, data json, \
         updated timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(), \
         total_cents bigint AS (total * 100) PERSISTENT, \
         CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE) \
         AUTO_INCREMENT=10 COMMENT='orders'",
    );
    s.ddl("CREATE TABLE orders_archive LIKE orders");
    s.ddl("CREATE TEMPORARY TABLE scratch (a int)");

    s.both(
        "INSERT INTO customers (email, name) VALUES ('a@x', 'A'), ('b@x', NULL)",
        "INSERT INTO \"customers\" (\"email\", \"name\") VALUES ('a@x', 'A'), ('b@x', NULL)",
    );
    s.both(
        "INSERT INTO orders (id, customer_id, total) VALUES (10, 1, 12.50), (11, 2, 3.99)",
        "INSERT INTO \"orders\" (\"id\", \"customer_id\", \"total\") VALUES (10, 1, 12.50), (11, 2, 3.99)",
    );

    // Columns: added (NOT NULL without default: existing rows get the implicit default),
    // moved, retyped, renamed, defaults changed, dropped.
    s.ddl("ALTER TABLE customers ADD COLUMN points int unsigned NOT NULL AFTER email, ADD phone varchar(20) FIRST");
    s.both(
        "UPDATE customers SET name = 'B' WHERE name IS NULL",
        "UPDATE customers SET name = 'B' WHERE name IS NULL",
    );
    s.ddl("ALTER TABLE customers MODIFY name varchar(100) NOT NULL DEFAULT ''");
    s.ddl("ALTER TABLE customers CHANGE COLUMN tier level enum('basic','gold','platinum') NOT NULL DEFAULT 'basic' AFTER id");
    s.ddl("ALTER TABLE customers RENAME COLUMN phone TO mobile, ALTER COLUMN points SET DEFAULT 5");
    s.ddl("ALTER TABLE orders ADD qty smallint NOT NULL DEFAULT 1");
    s.ddl("ALTER TABLE orders MODIFY total decimal(14,4) NOT NULL, MODIFY qty bigint NOT NULL DEFAULT 2");
    s.ddl("ALTER TABLE orders ADD COLUMN shipped datetime(3) NULL, ADD INDEX by_shipped (shipped DESC)");
    s.ddl("ALTER TABLE orders DROP COLUMN note");
    let (a, b) = s.rows(
        "SELECT id, email, points, name, level FROM customers ORDER BY id",
        "SELECT id, email, points, name, level FROM customers ORDER BY id",
    );
    assert_eq!(a, b);
    let (a, b) = s.rows(
        "SELECT id, customer_id, total, total_cents, qty FROM orders ORDER BY id",
        "SELECT id, customer_id, total, total_cents, qty FROM orders ORDER BY id",
    );
    assert_eq!(a, b);

    // Keys.
    s.ddl("CREATE INDEX by_name ON customers (name(10), level)");
    s.ddl("ALTER TABLE customers ADD UNIQUE (mobile), ADD KEY (mobile)");
    s.ddl("ALTER TABLE customers DROP INDEX by_name, RENAME INDEX mobile_2 TO mobile_any");
    s.ddl("DROP INDEX email ON customers");
    s.ddl("ALTER TABLE orders_archive ADD CONSTRAINT fk_arch FOREIGN KEY (customer_id) REFERENCES customers (id)");
    s.ddl("ALTER TABLE orders_archive DROP FOREIGN KEY fk_arch");
    s.ddl("ALTER TABLE orders_archive DROP PRIMARY KEY, ADD PRIMARY KEY (id, customer_id)");

    // Tables.
    assert_eq!(
        s.ddl("ALTER TABLE orders ENGINE=InnoDB, ALGORITHM=COPY"),
        DdlKind::Ignored
    );
    s.ddl("ALTER TABLE orders COMMENT 'all orders', AUTO_INCREMENT=100");
    s.ddl("RENAME TABLE orders_archive TO old_orders");
    s.ddl("ALTER TABLE old_orders ADD COLUMN reason varchar(10) NOT NULL DEFAULT 'n/a', RENAME TO archived");
    s.ddl("ALTER TABLE archived DROP COLUMN updated");
    s.ddl("ALTER TABLE orders MODIFY updated timestamp(3) NOT NULL DEFAULT current_timestamp(3) ON UPDATE current_timestamp(3)");
    s.ddl("CREATE TABLE counters (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, n int)");
    s.both(
        "INSERT INTO counters (id, n) VALUES (1, 1), (7, 2)",
        "INSERT INTO counters (id, n) VALUES (1, 1), (7, 2)",
    );
    // An identity column retyped, then turned into an owned sequence (bigint unsigned is
    // numeric(20,0)), continued past 7.
    s.ddl("ALTER TABLE counters MODIFY id bigint NOT NULL AUTO_INCREMENT");
    s.ddl("ALTER TABLE counters MODIFY id bigint unsigned NOT NULL AUTO_INCREMENT");
    // A trigger that lists the stored columns (the table has a generated one) follows them.
    s.ddl("CREATE TABLE stamped (id int PRIMARY KEY, v int, twice int AS (v * 2) STORED, at datetime(6) DEFAULT now(6) ON UPDATE now(6))");
    s.ddl("ALTER TABLE stamped ADD w varchar(3), MODIFY v bigint");
    s.both(
        "INSERT INTO stamped (id, v) VALUES (1, 2)",
        "INSERT INTO stamped (id, v) VALUES (1, 2)",
    );
    let (a, b) = s.rows(
        "SELECT id, v, twice FROM stamped",
        "SELECT id, v, twice FROM stamped",
    );
    assert_eq!(a, b);
    s.pg("UPDATE stamped SET w = 'x' WHERE id = 1");
    s.ddl("ALTER TABLE stamped DROP COLUMN at");
    s.ddl("TRUNCATE TABLE archived");
    s.ddl("DROP TABLE IF EXISTS archived, nothere /* generated by server */");

    // The translated triggers and sequences work.
    s.pg(
        "INSERT INTO customers (email, name, points, level) VALUES ('c@x', 'C', 1, 'gold'); \
         INSERT INTO counters (n) VALUES (3); \
         UPDATE orders SET total = total + 1 WHERE id = 10",
    );
    let (_, ids) = s.rows("SELECT 1", "SELECT max(id) FROM customers");
    assert_eq!(ids, "3");
    let (_, ids) = s.rows("SELECT 1", "SELECT max(id) FROM counters");
    assert_eq!(ids, "8");
}

#[test]
fn types_and_generated_keys_match_the_server() {
    let mut s = Servers::new("tracker_types");
    s.ddl(
        "CREATE TABLE types (a bool, b serial, c float(30), d double precision, e dec, f numeric(5), \
         g char, h national varchar(10), i long varchar, k year, l enum(\"x\",'y''z', 'w\\\\v'), \
         m set('p','q') NOT NULL, n bit, o binary(4), p varbinary(8), q time(3), r datetime, \
         s timestamp(6) NULL, t json, u int zerofill, v mediumint unsigned, w tinyint(1) unsigned, \
         x float(7,3) unsigned, y decimal(20,5) unsigned zerofill, z tinyblob, aa mediumtext, \
         ab longblob, ac char(10) binary, ad varchar(5) CHARSET latin1, ae integer(5), \
         af bigint(20) unsigned DEFAULT 5, ag date DEFAULT '2020-01-01')",
    );
    // Keys: unnamed keys get the source's names, a foreign key generates an index unless a
    // key covers it, and a later covering key replaces a generated one.
    s.ddl("CREATE TABLE parent (id int PRIMARY KEY, k int, UNIQUE KEY (k))");
    s.ddl(
        "CREATE TABLE child (id int PRIMARY KEY, p int, q int, r int, \
         CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES parent (id), FOREIGN KEY (q) REFERENCES parent (id), \
         KEY (r), UNIQUE (r), INDEX (r, q), FOREIGN KEY (r) REFERENCES parent (k), FOREIGN KEY (p) REFERENCES parent (id))",
    );
    s.ddl("ALTER TABLE child ADD INDEX (p, r)");
    s.ddl("ALTER TABLE child ADD COLUMN s int, ADD CONSTRAINT fk_s FOREIGN KEY (s) REFERENCES parent (id)");
    s.ddl("ALTER TABLE child ADD KEY s_first (s, id), DROP FOREIGN KEY fk_s");
    s.ddl("CREATE TABLE child2 LIKE child");
    s.ddl("ALTER TABLE child2 ADD CONSTRAINT fk_c2 FOREIGN KEY (p) REFERENCES parent (id)");
    s.ddl("RENAME TABLE child TO kid");
    s.ddl("ALTER TABLE kid DROP FOREIGN KEY kid_ibfk_1");
}
