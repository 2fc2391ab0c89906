//! Foreign key actions during replication, end to end through the `dts` command on real
//! servers: MariaDB runs `ON DELETE CASCADE` / `SET NULL` and `ON UPDATE CASCADE` inside
//! InnoDB and does not log the rows they change, so the target must perform them itself —
//! exactly once, in the source's order, and nowhere else.

mod common;

use common::{assert_table_equal, dts, source_tables, text, Env};

const ALL: &str = "[\"schema\", \"full\", \"incremental\"]";

/// Parent/child/grandchild chains with every referential action MariaDB runs, a
/// self-referencing table, and a child without a key.
const SCHEMA: &str = "
CREATE TABLE parent (
    id INT PRIMARY KEY,
    code VARCHAR(10) NOT NULL UNIQUE,
    name VARCHAR(20),
    ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB;
CREATE TABLE child (
    id INT PRIMARY KEY,
    parent_id INT,
    parent_code VARCHAR(10),
    note VARCHAR(20),
    ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP(3),
    CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT child_code FOREIGN KEY (parent_code) REFERENCES parent (code)
        ON DELETE SET NULL ON UPDATE CASCADE
) ENGINE=InnoDB;
CREATE TABLE grandchild (
    id INT PRIMARY KEY,
    child_id INT,
    note VARCHAR(20),
    CONSTRAINT grandchild_child FOREIGN KEY (child_id) REFERENCES child (id)
        ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB;
CREATE TABLE orphanable (
    id INT PRIMARY KEY,
    parent_id INT,
    ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP(3),
    CONSTRAINT orphanable_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
        ON DELETE SET NULL ON UPDATE SET NULL
) ENGINE=InnoDB;
-- MariaDB accepts SET DEFAULT, and InnoDB keeps the key restricting.
CREATE TABLE defaulted (
    id INT PRIMARY KEY,
    parent_id INT DEFAULT 1,
    CONSTRAINT defaulted_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
        ON DELETE SET DEFAULT
) ENGINE=InnoDB;
CREATE TABLE restricted (
    id INT PRIMARY KEY,
    parent_id INT,
    CONSTRAINT restricted_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
        ON DELETE RESTRICT ON UPDATE NO ACTION
) ENGINE=InnoDB;
CREATE TABLE loose (
    parent_id INT,
    note VARCHAR(10),
    CONSTRAINT loose_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
        ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB;
CREATE TABLE employee (
    id INT PRIMARY KEY,
    manager_id INT,
    mentor_id INT,
    name VARCHAR(20),
    CONSTRAINT employee_manager FOREIGN KEY (manager_id) REFERENCES employee (id)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT employee_mentor FOREIGN KEY (mentor_id) REFERENCES employee (id)
        ON DELETE SET NULL
) ENGINE=InnoDB;

INSERT INTO parent (id, code, name) SELECT seq, CONCAT('c', seq), CONCAT('p', seq) FROM seq_1_to_30;
INSERT INTO child (id, parent_id, parent_code, note)
    SELECT seq, 1 + seq % 30, CONCAT('c', 1 + (seq * 7) % 30), CONCAT('n', seq) FROM seq_1_to_120;
INSERT INTO grandchild (id, child_id, note) SELECT seq, 1 + seq % 120, 'g' FROM seq_1_to_300;
INSERT INTO orphanable (id, parent_id) SELECT seq, 1 + seq % 30 FROM seq_1_to_60;
INSERT INTO defaulted VALUES (1, 1), (2, 2);
INSERT INTO restricted VALUES (1, 1), (2, 9);
INSERT INTO loose SELECT 1 + seq % 30, 'l' FROM seq_1_to_60;
INSERT INTO employee VALUES (1, NULL, NULL, 'ceo'), (2, 1, NULL, 'cto'), (3, 1, NULL, 'cfo'),
    (4, 2, 3, 'dev'), (5, 2, 3, 'ops'), (6, 4, 2, 'intern'), (7, 3, 2, 'clerk'),
    (8, 7, 6, 'temp'), (9, 3, 4, 'aide');
";

/// Source transactions applied during replication: deletes of parents, parent key
/// changes (primary and unique), non-key updates of parents, all mixed in multi-statement
/// transactions, a replicated table with a foreign key, and a self-referencing table.
const WORKLOAD: &[&str] = &[
    // Non-key updates of parents: their children stay.
    "UPDATE parent SET name = 'renamed' WHERE id IN (1, 2, 3)",
    "BEGIN; UPDATE parent SET name = 'again' WHERE id = 1; UPDATE child SET note = 'kept' WHERE parent_id = 1; COMMIT",
    // A delete cascading through child to grandchild, setting orphanable and child codes
    // to NULL, and deleting rows of a table without a key.
    "DELETE FROM parent WHERE id = 3",
    // A primary key change cascading to child (and on to nothing else) and nulling
    // orphanable.
    "UPDATE parent SET id = 104 WHERE id = 4",
    // A change of a unique referenced column, cascading to child.parent_code.
    "UPDATE parent SET code = 'x5' WHERE id = 5",
    // Inserted and deleted in one transaction, with children in between; then re-created.
    "BEGIN;
     INSERT INTO parent (id, code, name) VALUES (50, 'c50', 'new');
     INSERT INTO child (id, parent_id, parent_code, note) VALUES (500, 50, 'c50', 'short-lived');
     INSERT INTO grandchild VALUES (5000, 500, 'short-lived');
     DELETE FROM parent WHERE id = 50;
     INSERT INTO parent (id, code, name) VALUES (50, 'c50', 'reborn');
     INSERT INTO child (id, parent_id, parent_code, note) VALUES (501, 50, 'c50', 'stays');
     UPDATE parent SET name = 'touched' WHERE id = 6;
     DELETE FROM child WHERE parent_id = 7 LIMIT 1;
     DELETE FROM parent WHERE id = 7;
     COMMIT",
    // Deleted and re-inserted with the same key: the old children must not come back.
    "BEGIN; DELETE FROM parent WHERE id = 8; INSERT INTO parent (id, code, name) VALUES (8, 'c8', 'back'); COMMIT",
    // RESTRICT: the child goes first, in the same transaction.
    "BEGIN; DELETE FROM restricted WHERE parent_id = 9; DELETE FROM parent WHERE id = 9; COMMIT",
    // A child's key change cascading to grandchild.
    "UPDATE child SET id = 9999 WHERE id = 11",
    // Self-reference: a manager's subtree goes, mentees lose their mentor; a non-key update
    // of a manager keeps the reports.
    "BEGIN; UPDATE employee SET name = 'boss' WHERE id = 1; DELETE FROM employee WHERE id = 2; COMMIT",
    // InnoDB refuses ON UPDATE CASCADE into the same table (it acts as RESTRICT): only a
    // row nobody reports to can change its key.
    "UPDATE employee SET id = 80 WHERE id = 8",
    // A table created during replication, with a cascading foreign key.
    "CREATE TABLE late (id INT PRIMARY KEY, parent_id INT,
        CONSTRAINT late_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB",
    "INSERT INTO late VALUES (1, 10), (2, 10), (3, 12)",
    "DELETE FROM parent WHERE id = 10",
    // Many parents in one statement, and more work after it in the same transaction.
    "BEGIN; DELETE FROM parent WHERE id BETWEEN 11 AND 20; INSERT INTO child (id, parent_id, note) VALUES (600, 21, 'gone'); DELETE FROM parent WHERE id = 21; UPDATE parent SET name = 'last' WHERE id = 22; COMMIT",
];

#[tokio::test]
async fn foreign_key_actions_reach_the_target() {
    let env = Env::new("cascade", SCHEMA);
    let task = env.task_file(ALL, "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    for sql in WORKLOAD {
        env.my(sql);
    }
    // What InnoDB did: children of deleted parents are gone, cascaded updates do not
    // touch ON UPDATE CURRENT_TIMESTAMP columns.
    assert_eq!(
        env.my("SELECT count(*) FROM child WHERE parent_id = 3"),
        "0"
    );
    assert_eq!(
        env.my("SELECT count(*) FROM orphanable WHERE parent_id IS NULL AND ts = '2001-01-01 00:00:00'"),
        env.my("SELECT count(*) FROM orphanable WHERE parent_id IS NULL"),
    );
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    let tables = source_tables(&env);
    assert!(tables.contains(&"late".to_string()), "{tables:?}");
    for table in &tables {
        assert_table_equal(&env, table, &env.db).await;
    }
    let s = &env.db;
    assert_eq!(
        env.pg(&format!(
            "SELECT count(*) FROM {s}.child WHERE parent_id = 1"
        )),
        env.my("SELECT count(*) FROM child WHERE parent_id = 1"),
    );
    assert_ne!(
        env.pg(&format!(
            "SELECT count(*) FROM {s}.child WHERE parent_id = 1"
        )),
        "0"
    );
}

#[tokio::test]
async fn on_update_timestamps_keep_the_source_values() {
    let env = Env::new(
        "cascade_ts",
        "CREATE TABLE account (
             id INT PRIMARY KEY,
             name VARCHAR(20),
             ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP(3)
         ) ENGINE=InnoDB;
         CREATE TABLE entry (
             id INT PRIMARY KEY,
             account_id INT,
             ts TIMESTAMP(3) NOT NULL DEFAULT '2001-01-01 00:00:00' ON UPDATE CURRENT_TIMESTAMP(3),
             CONSTRAINT entry_account FOREIGN KEY (account_id) REFERENCES account (id)
                 ON DELETE SET NULL ON UPDATE CASCADE
         ) ENGINE=InnoDB;
         INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');
         INSERT INTO entry (id, account_id) VALUES (1, 1), (2, 2), (3, 3), (4, 3);",
    );
    let task = env.task_file(ALL, "");
    let task = task.to_str().unwrap().to_string();
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));

    // Set explicitly, set by the server, kept by a key change, untouched by cascades.
    env.my("UPDATE account SET name = 'a2', ts = '2010-05-05 05:05:05.5' WHERE id = 1");
    env.my("UPDATE account SET name = 'b2' WHERE id = 2");
    env.my("UPDATE account SET id = 20 WHERE id = 2");
    env.my("UPDATE account SET id = 30, ts = '2011-01-01 00:00:00' WHERE id = 3");
    env.my("DELETE FROM account WHERE id = 1");
    env.my("UPDATE entry SET ts = '2012-12-12 12:12:12' WHERE id = 4");
    let out = dts(&["run", "--config", &task, "--until-caught-up"]);
    assert!(out.status.success(), "{}", text(&out));
    for table in ["account", "entry"] {
        assert_table_equal(&env, table, &env.db).await;
    }
}
