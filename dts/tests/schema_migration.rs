//! Schema migration on real servers: the sample database is migrated and every created
//! column is checked against the documented mapping table; prechecks and reruns.

use dts::{CheckStatus, Task, TaskConfig};

const FIXTURE: &str = include_str!("../../fixtures/mysql/shop.sql");

struct Env {
    source_db: String,
    target_db: String,
}

fn setup(prefix: &str) -> Env {
    let my = dts_testkit::mariadb();
    let pg = dts_testkit::postgres();
    let source_db = my.create_unique_database(prefix).unwrap();
    my.exec_in(&source_db, FIXTURE).unwrap();
    let target_db = dts_testkit::unique_name(prefix);
    pg.create_database(&target_db).unwrap();
    Env {
        source_db,
        target_db,
    }
}

fn config(env: &Env, extra: &str) -> TaskConfig {
    let text = format!(
        "name = \"t\"\nmigration = [\"schema\"]\nsource.url = \"{}\"\ntarget.url = \"{}\"\n\
         objects.include = [\"{}\"]\n{extra}",
        dts_testkit::mariadb().url(),
        dts_testkit::postgres().url_for(&env.target_db),
        env.source_db
    );
    text.parse().unwrap()
}

fn pg(env: &Env, sql: &str) -> String {
    dts_testkit::postgres()
        .query_in(&env.target_db, sql)
        .unwrap()
        .trim()
        .to_string()
}

/// `table.column type [not null]` for every column of `schema` in the target.
fn columns(env: &Env, schema: &str) -> Vec<String> {
    pg(
        env,
        &format!(
            "SELECT quote_ident(c.relname) || '.' || a.attname || ' ' || \
                    format_type(a.atttypid, a.atttypmod) || \
                    CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{schema}' AND c.relkind = 'r' AND a.attnum > 0 \
               AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[tokio::test]
async fn sample_database_schema_matches_the_mapping_table() {
    let env = setup("schema_map");
    let s = &env.source_db;
    let task = Task::new(config(&env, ""));
    let report = task.precheck().await.unwrap();
    assert!(report.passed(), "{report}");
    let done = task.run(None).await.unwrap();
    assert!(!done.created.is_empty());

    let cols = columns(&env, s);
    // The documented mapping (dts-typemap/README.md), column by column.
    let expected_all_types = [
        "all_types.id integer not null",
        "all_types.c_tinyint smallint",
        "all_types.c_tinyint_u smallint",
        "all_types.c_bool smallint",
        "all_types.c_smallint smallint",
        "all_types.c_smallint_u integer",
        "all_types.c_mediumint integer",
        "all_types.c_mediumint_u integer",
        "all_types.c_int integer",
        "all_types.c_int_u bigint",
        "all_types.c_bigint bigint",
        "all_types.c_bigint_u numeric(20,0)",
        "all_types.c_decimal numeric(65,30)",
        "all_types.c_decimal_0 numeric(10,0)",
        "all_types.c_float real",
        "all_types.c_double double precision",
        "all_types.c_bit1 bit(1)",
        "all_types.c_bit64 bit(64)",
        "all_types.c_char character varying(10)",
        "all_types.c_varchar character varying(50)",
        "all_types.c_latin1 character varying(50)",
        "all_types.c_tinytext text",
        "all_types.c_text text",
        "all_types.c_mediumtext text",
        "all_types.c_longtext text",
        "all_types.c_binary bytea",
        "all_types.c_varbinary bytea",
        "all_types.c_tinyblob bytea",
        "all_types.c_blob bytea",
        "all_types.c_mediumblob bytea",
        "all_types.c_longblob bytea",
        "all_types.c_date date",
        "all_types.c_datetime timestamp(0) without time zone",
        "all_types.c_datetime6 timestamp(6) without time zone",
        "all_types.c_timestamp timestamp(0) with time zone",
        "all_types.c_timestamp6 timestamp(6) with time zone",
        "all_types.c_time interval hour to second(0)",
        "all_types.c_time6 interval hour to second(6)",
        "all_types.c_year smallint",
        "all_types.c_enum character varying(3)",
        "all_types.c_set character varying(5)",
        "all_types.c_json jsonb",
    ];
    let got: Vec<&String> = cols
        .iter()
        .filter(|c| c.starts_with("all_types."))
        .collect();
    assert_eq!(
        got,
        expected_all_types.iter().collect::<Vec<_>>(),
        "all_types columns"
    );

    // Other tables: keys, reserved words and mixed case (lowercased by default), JSON.
    for c in [
        "customers.id bigint not null",
        "customers.country character varying(2) not null",
        "customers.is_active smallint not null",
        "customers.updated_at timestamp(3) with time zone",
        "products.flags bit(8) not null",
        "products.attributes jsonb",
        "orders.id numeric(20,0) not null",
        "orders.total numeric(65,30) not null",
        "order_items.line_total numeric(14,2)",
        "\"order\".select integer not null",
        "\"order\".from character varying(10)",
        "\"order\".camelcase integer",
        "audit_log.message character varying(255) not null",
    ] {
        assert!(cols.iter().any(|x| x == c), "missing `{c}` in {cols:#?}");
    }

    // Primary keys, unique and secondary indexes (prefix index as expressions), FKs.
    let pkeys = pg(
        &env,
        &format!(
            "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE contype IN ('p','f') AND connamespace = '{s}'::regnamespace ORDER BY 1"
        ),
    );
    for needle in [
        "order_items PRIMARY KEY (order_id, line_no)",
        "FOREIGN KEY (order_id) REFERENCES",
        "ON DELETE CASCADE",
        "FOREIGN KEY (sku) REFERENCES",
        "ON UPDATE CASCADE",
        "PRIMARY KEY (sku)",
    ] {
        assert!(pkeys.contains(needle), "missing `{needle}` in\n{pkeys}");
    }
    let indexes = pg(
        &env,
        &format!("SELECT indexdef FROM pg_indexes WHERE schemaname = '{s}' ORDER BY indexname"),
    );
    assert!(indexes.contains("CREATE UNIQUE INDEX"), "{indexes}");
    assert!(
        indexes.contains("\"left\"((last_name)::text, 10)"),
        "{indexes}"
    );
    assert!(
        indexes.contains("\"left\"((first_name)::text, 5)"),
        "{indexes}"
    );
    // `customer_id` exists as an index name on two tables: both were created.
    let customer_id_indexes = indexes
        .lines()
        .filter(|l| l.contains("customer_id") || l.contains("camelcase"))
        .count();
    assert!(customer_id_indexes >= 2, "{indexes}");
    // The settings table has only a unique key: it becomes a unique index.
    assert!(
        indexes
            .lines()
            .any(|l| l.contains("UNIQUE") && l.contains("settings")),
        "{indexes}"
    );

    // Identity past the source's AUTO_INCREMENT and the copied maximum.
    let next_order = pg(
        &env,
        &format!("SELECT nextval(pg_get_serial_sequence('{s}.orders', 'id'))"),
    );
    assert_eq!(next_order, "1003");
    let identity = pg(
        &env,
        &format!(
            "SELECT attidentity FROM pg_attribute \
             WHERE attrelid = '{s}.customers'::regclass AND attname = 'id'"
        ),
    );
    assert_eq!(identity, "d");

    // Defaults.
    let defaults = pg(
        &env,
        &format!(
            "SELECT table_name || '.' || column_name || '=' || column_default \
             FROM information_schema.columns WHERE table_schema = '{s}' \
             AND column_default IS NOT NULL ORDER BY 1"
        ),
    );
    for needle in [
        "customers.country='DE'",
        "customers.created_at=CURRENT_TIMESTAMP",
        "products.flags='00000101'::\"bit\"",
        "products.status='draft'",
        "order.from='x''y'",
        "orders.placed_at=LOCALTIMESTAMP(6)",
    ] {
        assert!(
            defaults.contains(needle),
            "missing `{needle}` in\n{defaults}"
        );
    }

    // Comments, the ON UPDATE trigger, generated columns.
    assert_eq!(
        pg(
            &env,
            &format!("SELECT obj_description('{s}.products'::regclass)")
        ),
        "what we sell, it's 'quoted'"
    );
    assert_eq!(
        pg(
            &env,
            &format!("SELECT col_description('{s}.customers'::regclass, 1)")
        ),
        "customer number"
    );
    let triggers = pg(
        &env,
        &format!(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = '{s}.customers'::regclass \
             AND NOT tgisinternal"
        ),
    );
    assert!(!triggers.is_empty(), "no ON UPDATE trigger on customers");
    let generated = pg(
        &env,
        &format!(
            "SELECT table_name || '.' || column_name || ' ' || generation_expression \
             FROM information_schema.columns WHERE table_schema = '{s}' \
             AND is_generated = 'ALWAYS' ORDER BY 1"
        ),
    );
    assert!(generated.contains("customers.full_name"), "{generated}");
    assert!(generated.contains("order_items.line_total"), "{generated}");

    // The trigger behaves like MySQL's ON UPDATE CURRENT_TIMESTAMP.
    pg(
        &env,
        &format!(
            "INSERT INTO {s}.customers (email, updated_at) VALUES ('t@x', '2000-01-01');
             UPDATE {s}.customers SET notes = 'changed' WHERE email = 't@x'"
        ),
    );
    let updated = pg(
        &env,
        &format!("SELECT updated_at > '2001-01-01' FROM {s}.customers WHERE email = 't@x'"),
    );
    assert_eq!(updated, "t");

    // A second run finds everything done and changes nothing.
    let again = task.run(None).await.unwrap();
    assert!(again.created.is_empty(), "{:?}", again.created);
    assert_eq!(again.already_done.len(), 2);
}

#[tokio::test]
async fn keep_case_and_renames_are_applied() {
    let env = setup("schema_case");
    let extra = format!(
        "policy.identifier_case = \"keep\"\n\
         [objects.rename_databases]\n\"{db}\" = \"Store\"\n\
         [objects.rename_tables]\n\"{db}.orders\" = \"PurchaseOrders\"\n\
         [objects.rename_columns]\n\"{db}.orders.total\" = \"grand_total\"\n",
        db = env.source_db
    );
    let task = Task::new(config(&env, &extra));
    task.run(None).await.unwrap();
    let cols = columns(&env, "Store");
    assert!(
        cols.iter()
            .any(|c| c == "\"Order\".Select integer not null"),
        "{cols:#?}"
    );
    assert!(
        cols.iter()
            .any(|c| c == "\"PurchaseOrders\".grand_total numeric(65,30) not null"),
        "{cols:#?}"
    );
}

#[tokio::test]
async fn conflicting_tables_fail_the_precheck_unless_ignored() {
    let env = setup("schema_conflict");
    let s = &env.source_db;
    pg(
        &env,
        &format!("CREATE SCHEMA {s}; CREATE TABLE {s}.orders (x int)"),
    );
    let task = Task::new(config(&env, ""));
    let report = task.precheck().await.unwrap();
    let item = report.item("target.conflicting_tables").unwrap();
    assert_eq!(item.status, CheckStatus::Fail, "{report}");
    assert!(item.message.contains(&format!("`{s}.orders`")), "{report}");
    let err = task.run(None).await.unwrap_err();
    assert_eq!(err.kind(), dts::core::ErrorKind::Precheck);
    // Nothing was created.
    assert_eq!(
        pg(
            &env,
            &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{s}'")
        ),
        "1"
    );

    let task = Task::new(config(&env, "policy.conflicting_tables = \"ignore\"\n"));
    let report = task.precheck().await.unwrap();
    assert_eq!(
        report.item("target.conflicting_tables").unwrap().status,
        CheckStatus::Warn
    );
    let done = task.run(None).await.unwrap();
    assert!(
        done.skipped.iter().any(|o| o.contains("orders")),
        "{done:?}"
    );
    // The existing table is untouched; the others exist.
    assert_eq!(
        columns(&env, s)
            .iter()
            .filter(|c| c.starts_with("orders."))
            .count(),
        1
    );
    assert!(columns(&env, s).iter().any(|c| c.starts_with("customers.")));
}

#[tokio::test]
async fn unsupported_types_and_unselected_parents_are_reported_by_name() {
    let my = dts_testkit::mariadb();
    let pg_server = dts_testkit::postgres();
    let db = my.create_unique_database("schema_unsup").unwrap();
    my.exec_in(
        &db,
        "CREATE TABLE places (id INT PRIMARY KEY, location POINT);
         CREATE TABLE parent (id INT PRIMARY KEY);
         CREATE TABLE child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES parent (id));",
    )
    .unwrap();
    let target = dts_testkit::unique_name("schema_unsup");
    pg_server.create_database(&target).unwrap();
    let cfg: TaskConfig = format!(
        "source.url = \"{}\"\ntarget.url = \"{}\"\nobjects.include = [\"{db}\"]\n\
         objects.exclude = [\"{db}.parent\"]\n",
        my.url(),
        pg_server.url_for(&target)
    )
    .parse()
    .unwrap();
    let task = Task::new(cfg);
    let report = task.precheck().await.unwrap();
    let item = report.item("schema.translation").unwrap();
    assert_eq!(item.status, CheckStatus::Fail, "{report}");
    assert!(item.message.contains("location"), "{report}");
    assert!(item.message.contains("point"), "{report}");
    assert!(item.message.contains("parent"), "{report}");
    assert!(task.run(None).await.is_err());
    assert_eq!(
        pg_server
            .query_in(
                &target,
                &format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{db}'")
            )
            .unwrap()
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn missing_privileges_are_prechecked() {
    let my = dts_testkit::mariadb();
    let pgs = dts_testkit::postgres();
    let env = setup("schema_priv");
    let user = dts_testkit::unique_name("u");
    my.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
         GRANT SELECT ON `{db}`.`orders` TO '{user}'@'%';",
        db = env.source_db
    ))
    .unwrap();
    pgs.exec(&format!(
        "CREATE ROLE {user} LOGIN; REVOKE CREATE ON DATABASE {} FROM PUBLIC",
        env.target_db
    ))
    .unwrap();
    let cfg: TaskConfig = format!(
        "source.url = \"mysql://{user}:pw@127.0.0.1:{}\"\n\
         target.url = \"postgres://{user}@127.0.0.1:{}/{}\"\n\
         objects.include = [\"{}\"]\n",
        my.port(),
        pgs.port(),
        env.target_db,
        env.source_db
    )
    .parse()
    .unwrap();
    let report = Task::new(cfg).precheck().await.unwrap();
    // The account sees only `orders`; tables it cannot see would be left out silently, so
    // the precheck fails naming the database.
    let src = report.item("source.privileges").unwrap();
    assert_eq!(src.status, CheckStatus::Fail, "{report}");
    assert!(
        src.message.contains(&format!("`{}`", env.source_db)),
        "{report}"
    );
    let tgt = report.item("target.privileges").unwrap();
    assert_eq!(tgt.status, CheckStatus::Fail, "{report}");
    assert!(tgt.message.contains(&env.target_db), "{report}");
}

#[tokio::test]
async fn unreachable_servers_fail_connectivity_with_the_url() {
    let cfg: TaskConfig = "source.url = \"mysql://root:secret@127.0.0.1:1\"\n\
         target.url = \"postgres://postgres@127.0.0.1:1/x\"\n\
         objects.include = [\"shop\"]\n"
        .parse()
        .unwrap();
    let report = Task::new(cfg).precheck().await.unwrap();
    let item = report.item("source.connectivity").unwrap();
    assert_eq!(item.status, CheckStatus::Fail);
    assert!(item.message.contains("127.0.0.1:1"), "{report}");
    assert!(!item.message.contains("secret"), "{report}");
    assert_eq!(
        report.item("target.connectivity").unwrap().status,
        CheckStatus::Fail
    );
    assert_eq!(
        report.item("schema.translation").unwrap().status,
        CheckStatus::Skipped
    );
}
