#!/usr/bin/env python3
"""Compares lipost's PostgreSQL schema with SQLite's.

    .ci/pg-schema-check.py URL            checks the schema in URL's database (as migrated)
    .ci/pg-schema-check.py --apply URL    makes a fresh database on URL's server, applies
                                          src/store/pg_migrations.rs there (psql, one
                                          transaction per migration, ON_ERROR_STOP), checks
                                          it and drops it

URL is a PostgreSQL URL (e.g. the one `.ci/pg-cluster start DIR` prints); it is never printed.
The SQLite side is built in memory from src/store/migrations.rs. For every table the check
compares the columns (name, type family, NOT NULL, default, primary key position), the
indexes (unique, columns, partial predicate), the foreign keys, the CHECK constraints, and
triggers and views; and it checks PostgreSQL's own rules: every text column is
`COLLATE "C"`, every integer BIGINT, a rowid alias an identity column. What only
PostgreSQL has on purpose (the runner's `lipost_schema`, the multi-node `nodes`,
`posts.claimed_by`/`lease_until`, `posts_lease`) is listed, not an error. Needs psql.
Exits 0 when equal, 1 on a difference, 2 on a usage or connection error.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQLITE_MIGRATIONS = os.path.join(ROOT, "src", "store", "migrations.rs")
PG_MIGRATIONS = os.path.join(ROOT, "src", "store", "pg_migrations.rs")

# What PostgreSQL has and SQLite has not, on purpose.
PG_ONLY_TABLES = {
    "lipost_schema": "the migration runner's version row",
    "nodes": "pg migration 2: several nodes",
}
PG_ONLY_COLUMNS = {
    ("posts", "claimed_by"): "pg migration 2: claims",
    ("posts", "lease_until"): "pg migration 2: claims",
}
PG_ONLY_INDEXES = {"posts_lease": "pg migration 2: claims"}


def rust_migrations(path):
    """The raw strings r#"..."# of a Rust MIGRATIONS array, in order."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    body = src[src.index("MIGRATIONS") :]
    return re.findall(r'r#"(.*?)"#', body, re.S)


# ---------------------------------------------------------------- normalising SQL text


def norm_expr(s):
    """A canonical text for a CHECK, a predicate or a default, as either database renders it.

    PostgreSQL writes `state IN ('a', 'b')` back as
    `((state = ANY (ARRAY['a'::text, 'b'::text])))`; both become `state in 'a','b'`.
    """
    if s is None:
        return None
    s = s.strip()
    s = re.sub(r"^CHECK\s*", "", s, flags=re.I)
    s = re.sub(r'::\s*"?[a-z ]+"?(\[\])?', "", s, flags=re.I)  # casts
    s = re.sub(r'COLLATE\s+"?\w+"?', "", s, flags=re.I)
    s = s.replace("(", " ").replace(")", " ").replace("[", " ").replace("]", " ")
    s = s.lower()
    s = re.sub(r"=\s*any\s+array", " in ", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s*,\s*", ",", s)
    return s


def family_sqlite(declared):
    """SQLite's type affinity of a declared type (https://sqlite.org/datatype3.html 3.1)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "integer"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if t == "" or "BLOB" in t:
        return "blob"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "real"
    return "numeric"


def family_pg(data_type):
    return {
        "bigint": "integer",
        "integer": "integer",
        "smallint": "integer",
        "text": "text",
        "character varying": "text",
        "character": "text",
        "bytea": "blob",
        "double precision": "real",
        "real": "real",
        "numeric": "numeric",
    }.get(data_type, data_type)


def balanced_after(s, start):
    """The text inside the parenthesis that opens at s[start]."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "(":
            depth += 1
        elif s[i] == ")":
            depth -= 1
            if depth == 0:
                return s[start + 1 : i]
    raise ValueError("unbalanced parenthesis in: " + s)


# ---------------------------------------------------------------- SQLite side


def sqlite_schema():
    db = sqlite3.connect(":memory:")
    for m in rust_migrations(SQLITE_MIGRATIONS):
        db.executescript(m)
    out = {"tables": {}, "triggers": set(), "views": set()}
    for kind, name in db.execute("SELECT type, name FROM sqlite_master"):
        if kind == "trigger":
            out["triggers"].add(name)
        elif kind == "view":
            out["views"].add(name)
    tables = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    for t in tables:
        sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()[0]
        cols = []
        info = db.execute(f'PRAGMA table_info("{t}")').fetchall()
        pk_cols = [r for r in info if r[5] > 0]
        for cid, name, declared, notnull, dflt, pk in info:
            rowid_alias = len(pk_cols) == 1 and pk > 0 and declared.upper() == "INTEGER"
            cols.append(
                {
                    "name": name,
                    "family": family_sqlite(declared),
                    # A PRIMARY KEY column is NOT NULL in PostgreSQL; SQLite lets a non-integer
                    # one hold NULL (a legacy quirk): counted as NOT NULL, noted below.
                    "notnull": bool(notnull) or pk > 0,
                    "nullable_pk": pk > 0 and not notnull and not rowid_alias,
                    "default": "identity" if rowid_alias else norm_expr(dflt),
                    "pk": pk,
                }
            )
        indexes = {}
        for _seq, iname, unique, origin, partial in db.execute(f'PRAGMA index_list("{t}")'):
            if origin == "pk":
                continue
            icols = [r[2] for r in db.execute(f'PRAGMA index_info("{iname}")')]
            pred = None
            if partial:
                isql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (iname,)).fetchone()[0]
                pred = norm_expr(re.split(r"\bWHERE\b", isql, maxsplit=1, flags=re.I)[1])
            key = iname if origin == "c" else "unique(" + ",".join(icols) + ")"
            indexes[key] = {"unique": bool(unique), "columns": icols, "where": pred}
        fks = {}
        for row in db.execute(f'PRAGMA foreign_key_list("{t}")'):
            fid, _seq, rtable, frm, to, on_update, on_delete, _match = row
            fk = fks.setdefault(fid, {"from": [], "table": rtable, "to": [], "on_update": on_update, "on_delete": on_delete})
            fk["from"].append(frm)
            fk["to"].append(to)
        checks = set()
        for m in re.finditer(r"\bCHECK\s*\(", sql, re.I):
            checks.add(norm_expr(balanced_after(sql, m.end() - 1)))
        out["tables"][t] = {
            "columns": cols,
            "indexes": indexes,
            "fks": sorted(fk_key(f) for f in fks.values()),
            "checks": checks,
        }
    return out


def fk_key(f):
    return "({}) -> {}({}) on update {} on delete {}".format(
        ",".join(f["from"]), f["table"], ",".join(f["to"] or []), f["on_update"].lower(), f["on_delete"].lower()
    )


# ---------------------------------------------------------------- PostgreSQL side


def psql_json(url, query):
    """Runs a query returning one json value and decodes it."""
    r = subprocess.run(
        ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", query],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit(2)
    out = r.stdout.strip()
    return json.loads(out) if out else None


PG_ACTIONS = {"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}


def pg_schema(url):
    cols = psql_json(
        url,
        """
SELECT coalesce(json_agg(json_build_object(
    'table', table_name, 'name', column_name, 'pos', ordinal_position, 'type', data_type,
    'nullable', is_nullable, 'default', column_default, 'identity', is_identity,
    'collation', collation_name) ORDER BY table_name, ordinal_position), '[]')
FROM information_schema.columns c
WHERE table_schema = current_schema()
  AND table_name IN (SELECT table_name FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')""",
    )
    idx = psql_json(
        url,
        """
SELECT coalesce(json_agg(json_build_object(
    'table', t.relname, 'name', i.relname, 'unique', x.indisunique, 'primary', x.indisprimary,
    'constraint', (SELECT contype FROM pg_constraint WHERE conindid = x.indexrelid AND contype IN ('p', 'u') LIMIT 1),
    'columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum),
    'where', pg_get_expr(x.indpred, x.indrelid),
    'collations', (SELECT json_agg(coalesce(co.collname, '') ORDER BY k.ord) FROM unnest(x.indcollation) WITH ORDINALITY k(coll, ord)
                   LEFT JOIN pg_collation co ON co.oid = k.coll))), '[]')
FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()""",
    )
    cons = psql_json(
        url,
        """
SELECT coalesce(json_agg(json_build_object(
    'table', t.relname, 'type', c.contype, 'def', pg_get_constraintdef(c.oid),
    'from', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
    'rtable', r.relname,
    'to', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
    'on_update', c.confupdtype, 'on_delete', c.confdeltype)), '[]')
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid LEFT JOIN pg_class r ON r.oid = c.confrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema() AND c.contype IN ('c', 'f')""",
    )
    pk = psql_json(
        url,
        """
SELECT coalesce(json_agg(json_build_object('table', t.relname, 'col', a.attname, 'pos', k.ord)), '[]')
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE n.nspname = current_schema() AND c.contype = 'p'""",
    )
    trig = psql_json(
        url,
        """
SELECT coalesce(json_agg(t.tgname), '[]') FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND NOT t.tgisinternal""",
    )
    views = psql_json(
        url,
        "SELECT coalesce(json_agg(table_name), '[]') FROM information_schema.views WHERE table_schema = current_schema()",
    )
    pkpos = {(r["table"], r["col"]): r["pos"] for r in pk}
    out = {"tables": {}, "triggers": set(trig), "views": set(views), "rules": []}
    for c in cols:
        t = out["tables"].setdefault(c["table"], {"columns": [], "indexes": {}, "fks": [], "checks": set()})
        fam = family_pg(c["type"])
        identity = c["identity"] == "YES"
        t["columns"].append(
            {
                "name": c["name"],
                "family": fam,
                "notnull": c["nullable"] == "NO",
                "default": "identity" if identity else norm_expr(c["default"]),
                "pk": pkpos.get((c["table"], c["name"]), 0),
            }
        )
        where = "{}.{}".format(c["table"], c["name"])
        if fam == "text" and (c["type"] != "text" or c["collation"] != "C"):
            out["rules"].append(f'{where}: {c["type"]} collation {c["collation"]}, want TEXT COLLATE "C"')
        if fam == "integer" and c["type"] != "bigint":
            out["rules"].append(f'{where}: {c["type"]}, want BIGINT')
        if c["type"] == "boolean":
            out["rules"].append(f"{where}: boolean, want BIGINT 0/1")
    for i in idx:
        t = out["tables"].setdefault(i["table"], {"columns": [], "indexes": {}, "fks": [], "checks": set()})
        if i["primary"]:
            continue
        key = "unique(" + ",".join(i["columns"]) + ")" if i["constraint"] == "u" else i["name"]
        t["indexes"][key] = {"unique": i["unique"], "columns": i["columns"], "where": norm_expr(i["where"])}
        for col, coll in zip(i["columns"], i["collations"]):
            if coll not in ("", "C"):
                out["rules"].append(f'index {i["name"]} on {col}: collation {coll}, want "C"')
    for c in cons:
        t = out["tables"].setdefault(c["table"], {"columns": [], "indexes": {}, "fks": [], "checks": set()})
        if c["type"] == "c":
            t["checks"].add(norm_expr(c["def"]))
        else:
            t["fks"].append(
                fk_key(
                    {
                        "from": c["from"],
                        "table": c["rtable"],
                        "to": c["to"],
                        "on_update": PG_ACTIONS[c["on_update"]],
                        "on_delete": PG_ACTIONS[c["on_delete"]],
                    }
                )
            )
    for t in out["tables"].values():
        t["fks"].sort()
    return out


# ---------------------------------------------------------------- comparing


def col_text(c):
    if c is None:
        return "-"
    return "{} {}{}{}".format(
        c["family"],
        "notnull" if c["notnull"] else "null",
        " default " + c["default"] if c["default"] is not None else "",
        " pk" + str(c["pk"]) if c["pk"] else "",
    )


def idx_text(i):
    if i is None:
        return "-"
    return "{}({}){}".format(
        "unique " if i["unique"] else "", ",".join(i["columns"]), " where " + i["where"] if i["where"] else ""
    )


def compare(lite, pg):
    diffs, notes, warnings = [], [], []
    w = 28

    def line(what, a, b, ok, note=""):
        mark = "ok  " if ok else ("pg+ " if note else "DIFF")
        print(f"  {mark} {what:<{w}} sqlite: {a:<44} pg: {b}{'  (' + note + ')' if note else ''}")

    for name in sorted(set(lite["tables"]) | set(pg["tables"])):
        lt, pt = lite["tables"].get(name), pg["tables"].get(name)
        if lt is None:
            if name in PG_ONLY_TABLES:
                print(f"table {name}: PostgreSQL only ({PG_ONLY_TABLES[name]})")
            else:
                print(f"table {name}: DIFF, PostgreSQL only")
                diffs.append(f"table {name} only in PostgreSQL")
            continue
        if pt is None:
            print(f"table {name}: DIFF, missing in PostgreSQL")
            diffs.append(f"table {name} missing in PostgreSQL")
            continue
        print(f"table {name}")
        lcols = {c["name"]: c for c in lt["columns"]}
        pcols = {c["name"]: c for c in pt["columns"]}
        order_l = [c["name"] for c in lt["columns"]]
        order_p = [c["name"] for c in pt["columns"] if (name, c["name"]) not in PG_ONLY_COLUMNS]
        for cname in order_l + [c for c in pcols if c not in lcols]:
            a, b = lcols.get(cname), pcols.get(cname)
            if a is None and (name, cname) in PG_ONLY_COLUMNS:
                line(cname, "-", col_text(b), False, PG_ONLY_COLUMNS[(name, cname)])
                continue
            strip = lambda c: c and {k: v for k, v in c.items() if k != "nullable_pk"}
            ok = strip(a) == strip(b)
            line(cname, col_text(a), col_text(b), ok)
            if not ok:
                diffs.append(f"{name}.{cname}: sqlite {col_text(a)} / pg {col_text(b)}")
            if a and a.get("nullable_pk"):
                notes.append(f"{name}.{cname}: a non-integer PRIMARY KEY, NULL-able in SQLite (legacy quirk), NOT NULL in PostgreSQL")
        if order_l != order_p and set(order_l) == set(order_p):
            warnings.append(f"{name}: column order differs: sqlite {order_l} / pg {order_p}")
        for iname in sorted(set(lt["indexes"]) | set(pt["indexes"])):
            a, b = lt["indexes"].get(iname), pt["indexes"].get(iname)
            if a is None and iname in PG_ONLY_INDEXES:
                line("index " + iname, "-", idx_text(b), False, PG_ONLY_INDEXES[iname])
                continue
            ok = a == b
            line("index " + iname, idx_text(a), idx_text(b), ok)
            if not ok:
                diffs.append(f"index {iname}: sqlite {idx_text(a)} / pg {idx_text(b)}")
        for fk in sorted(set(lt["fks"]) | set(pt["fks"])):
            ok = fk in lt["fks"] and fk in pt["fks"]
            line("foreign key", fk if fk in lt["fks"] else "-", fk if fk in pt["fks"] else "-", ok)
            if not ok:
                diffs.append(f"{name}: foreign key {fk} in one only")
        for ck in sorted(lt["checks"] | pt["checks"]):
            ok = ck in lt["checks"] and ck in pt["checks"]
            line("check", ck if ck in lt["checks"] else "-", ck if ck in pt["checks"] else "-", ok)
            if not ok:
                diffs.append(f"{name}: check {ck} in one only")
    for kind in ("triggers", "views"):
        if lite[kind] != pg[kind]:
            diffs.append(f"{kind}: sqlite {sorted(lite[kind])} / pg {sorted(pg[kind])}")
        else:
            print(f"{kind}: {sorted(lite[kind]) or 'none'} on both")
    diffs += ["rule: " + r for r in pg["rules"]]
    return diffs, notes, warnings


# ---------------------------------------------------------------- main


def with_dbname(url, dbname):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def run_psql(url, *args, stdin=None):
    r = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args], input=stdin, capture_output=True, text=True
    )
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
    return r.returncode


def main(argv):
    apply = "--apply" in argv
    args = [a for a in argv if a != "--apply"]
    if len(args) != 1 or not re.match(r"^postgres(ql)?://", args[0]):
        sys.stderr.write(__doc__)
        return 2
    url = base = args[0]
    scratch = None
    if apply:
        scratch = f"lipost_schema_check_{os.getpid()}"
        if run_psql(url, "-c", f"CREATE DATABASE {scratch}") != 0:
            return 2
        url = with_dbname(url, scratch)
    try:
        if apply:
            migrations = rust_migrations(PG_MIGRATIONS)
            # The runner's table, as the lead's runner makes it.
            if run_psql(url, "-c", "CREATE TABLE lipost_schema (version BIGINT NOT NULL); INSERT INTO lipost_schema VALUES (0)"):
                return 2
            for n, m in enumerate(migrations, 1):
                sql = m + f"\nUPDATE lipost_schema SET version = {n};\n"
                if run_psql(url, "--single-transaction", "-f", "-", stdin=sql) != 0:
                    print(f"pg migration {n} failed")
                    return 1
                print(f"pg migration {n} applied")
        lite = sqlite_schema()
        pg = pg_schema(url)
        diffs, notes, warnings = compare(lite, pg)
    finally:
        if scratch:
            run_psql(base, "-c", f"DROP DATABASE IF EXISTS {scratch}")
    for n in sorted(set(notes)):
        print("note: " + n)
    for wn in warnings:
        print("warning: " + wn)
    if diffs:
        print(f"\n{len(diffs)} difference(s):")
        for d in diffs:
            print("  " + d)
        return 1
    print("\nPostgreSQL schema matches SQLite's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
