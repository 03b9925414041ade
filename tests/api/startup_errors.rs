//! Start-up errors of the real binary: a `DATABASE_URL` that cannot be parsed, names an
//! unsupported scheme, points at nothing, or names a database or role that does not exist.
//! Each ends the process with a non-zero status and one meaningful line on stderr, and nothing
//! it prints (stdout or stderr) carries the password or any other part of the URL's userinfo.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::postgres_admin_url;

struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `database_url` in a clean environment (empty working directory, no
/// config file, no Toss, no NATS) and `RUST_BACKTRACE=1`, which must not bring back a stack
/// trace. Killed after 30 s.
fn run_with(database_url: &str) -> Run {
    let dir = std::env::temp_dir().join(format!("ps_start_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .current_dir(&dir)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("API_KEYS", "startup-test-key")
        .env("APP_DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("{database_url}: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Non-zero exit, exactly one line on stderr that says `expected`, no panic or stack trace, and
/// none of `secrets` printed anywhere.
fn assert_refused(database_url: &str, expected: &[&str], secrets: &[&str]) {
    let run = run_with(database_url);
    let context = format!(
        "DATABASE_URL={database_url}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    assert!(
        run.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit status\n{context}"
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr\n{context}");
    let line = lines[0];
    assert!(
        line.starts_with("payment-service: cannot start: "),
        "{context}"
    );
    for word in expected {
        assert!(
            line.contains(word),
            "expected {word:?} in the line\n{context}"
        );
    }
    for noise in ["panicked", "backtrace", "Caused by", "RUST_BACKTRACE"] {
        assert!(!run.stderr.contains(noise), "{noise:?}\n{context}");
    }
    for secret in secrets {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{secret:?} was printed\n{context}"
        );
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn unescaped_hash_in_the_password() {
    // Before: a panic in the driver's URL parser, with a stack trace.
    assert_refused(
        "postgres://user:pa#ss@127.0.0.1:5432/db",
        &["DATABASE_URL", "not a valid URL", "%23"],
        &["pa#ss", "pa#", "#ss"],
    );
    assert_refused(
        "postgres://alice_q7:pa#ss_w0rd@127.0.0.1:5432/db",
        &["DATABASE_URL", "%23"],
        &["alice_q7", "pa#ss_w0rd", "ss_w0rd"],
    );
}

#[test]
fn reserved_characters_in_the_user_name_are_not_taken_for_the_host() {
    // `#`, `?` or `/` in the user name end the authority early; the URL then parses, with the
    // start of the user name as the host and the password in a fragment, query or path.
    for url in [
        "postgres://bob_k4#x:hunter2_pw@127.0.0.1:5432/db",
        "postgres://bob_k4?x:hunter2_pw@127.0.0.1:5432/db",
        "postgres://bob_k4/x:hunter2_pw@127.0.0.1:5432/db",
    ] {
        assert_refused(url, &["DATABASE_URL"], &["bob_k4", "hunter2_pw"]);
    }
}

#[test]
fn unparsable_url() {
    assert_refused(
        "postgres://carol_z3:s3cret_pw9@[::1",
        &["DATABASE_URL", "not a valid URL"],
        &["carol_z3", "s3cret_pw9"],
    );
    // Without `//` a URL parser takes the user name for the scheme.
    assert_refused(
        "carolz:s3cret_pw9@db.internal/payments",
        &["DATABASE_URL", "postgres://"],
        &["carolz", "s3cret_pw9"],
    );
}

#[test]
fn unsupported_scheme() {
    // Before: the driver's error quoted the whole URL, password included.
    assert_refused(
        "mysql://user:secret@host/db",
        &["unsupported scheme", "mysql"],
        &["secret", "user:"],
    );
    assert_refused(
        "mysql://dave_m1:t0p_secret_m1@db.internal:3306/payments",
        &["unsupported scheme", "mysql"],
        &["dave_m1", "t0p_secret_m1"],
    );
}

#[test]
fn connection_refused() {
    let port = closed_port();
    assert_refused(
        &format!("postgres://erin_c5:c0nn_refused_pw@127.0.0.1:{port}/payments"),
        &[&format!("127.0.0.1:{port}"), "refused"],
        &["erin_c5", "c0nn_refused_pw"],
    );
}

#[test]
fn unknown_host() {
    assert_refused(
        "postgres://frank_h6:n0_such_h0st_pw@no-such-host.invalid:5432/payments",
        &["no-such-host.invalid"],
        &["frank_h6", "n0_such_h0st_pw"],
    );
}

/// PostgreSQL (the tests' server, trust authentication): a database that does not exist, and a
/// role that does not exist, whose name the server quotes in its error.
#[test]
fn wrong_database_name_and_unknown_role() {
    let admin = url::Url::parse(&postgres_admin_url()).expect("TEST_POSTGRES_URL is a URL");
    let mut no_database = admin.clone();
    no_database.set_path(&format!("ps_no_such_db_{}", uuid::Uuid::new_v4().simple()));
    let password = admin.password().unwrap_or("w1ll_be_ign0red_pw").to_owned();
    let _ = no_database.set_password(Some(&password));
    let mut secrets = vec![password.as_str()];
    if admin.username() != "postgres" {
        // ("postgres" is also the scheme.)
        secrets.push(admin.username());
    }
    assert_refused(
        no_database.as_str(),
        &["no such database", no_database.path()],
        &secrets,
    );

    let mut no_role = admin.clone();
    let _ = no_role.set_username("grace_no_role_r8");
    let _ = no_role.set_password(Some("gr4ce_pw_r8"));
    assert_refused(
        no_role.as_str(),
        &["refused"],
        &["grace_no_role_r8", "gr4ce_pw_r8"],
    );
}

#[test]
fn sqlite_file_that_cannot_be_opened() {
    assert_refused(
        "sqlite:///ps-no-such-directory/sub/payments.db?mode=rwc",
        &["sqlite", "/ps-no-such-directory/sub/payments.db"],
        &[],
    );
}
