//! The one-shot commands of the binary (`payment-service reconcile`, `payment-service reseal`,
//! `payment-service operator hash`): wired from the same settings as the service, without its
//! listener or background tasks.

use super::{account_sealer, books, cipher, connect};
use crate::config::{Settings, configured};
use crate::service::Reconciliation;

/// A one-shot command does one thing at a time: its pool is that connection and a spare.
const ONE_AT_A_TIME: u32 = 2;

/// `payment-service reconcile --date YYYY-MM-DD`: runs one date against Toss's books (no
/// listener, no background tasks), writes the run's summary and discrepancies to `out`, and
/// returns the exit code: 0 when everything matched, 1 when there are discrepancies, 2 when
/// the run failed (Toss or the database could not be read) or could not start.
pub async fn reconcile_command(
    settings: Settings,
    date: &str,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<u8> {
    let date: chrono::NaiveDate = date
        .parse()
        .map_err(|_| anyhow::anyhow!("--date {date:?} is not a date written YYYY-MM-DD"))?;
    let reconciliation_settings = settings
        .reconciliation
        .options()
        .map_err(anyhow::Error::msg)?;
    let books = books(&settings)?;
    if books.is_empty() {
        anyhow::bail!("TOSS_SECRET_KEY is not set: there are no books of Toss's to read");
    }
    let store = connect(&settings.database, ONE_AT_A_TIME).await?;
    let reconciliation = Reconciliation::new(store.clone(), books, reconciliation_settings);
    let run = reconciliation
        .run_now(date, crate::domain::reconciliation::RunTrigger::Cli)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let discrepancies = reconciliation
        .discrepancies(&run)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    store.close().await;
    writeln!(out, "reconciliation of {date}: {}", run.status.as_str())?;
    let Some(summary) = &run.summary else {
        writeln!(
            out,
            "  failed: {}",
            run.error.as_deref().unwrap_or("unknown reason")
        )?;
        return Ok(2);
    };
    writeln!(
        out,
        "  toss_transactions={} matched={} discrepancies={} approved_krw={} cancelled_krw={} fees_krw={} payout_krw={}",
        summary.toss_transactions,
        summary.matched,
        summary.discrepancies,
        summary.approved_krw,
        summary.cancelled_krw,
        summary.fees_krw,
        summary.payout_krw
    )?;
    for found in &discrepancies {
        writeln!(
            out,
            "  {} order_id={} payment_key={} transaction_key={} payment_id={}",
            found.kind.as_str(),
            found.order_id.as_deref().unwrap_or("-"),
            found.payment_key.as_deref().unwrap_or("-"),
            found.transaction_key.as_deref().unwrap_or("-"),
            found.payment_id.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(if discrepancies.is_empty() { 0 } else { 1 })
}

/// `payment-service reseal`: moves every sealed billing key and refund account that is not
/// under the newest key of `BILLING_KEY_ENCRYPTION_KEY` (or not bound to its row) under it, in
/// batches of `batch`, with conditional updates (safe while the service runs; running it again
/// changes nothing). Writes the counts to `out`; returns the exit code: 0 when every value is
/// now under the newest key, 1 when some open under no configured key (left as they are).
pub async fn reseal_command(
    settings: Settings,
    batch: u64,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<u8> {
    if configured(&settings.billing.encryption_key).is_none() {
        anyhow::bail!(
            "BILLING_KEY_ENCRYPTION_KEY is not set: there is no key to re-seal under (set the keys, newest first)"
        );
    }
    let cipher = cipher(&settings)?;
    let accounts = account_sealer(&settings, &cipher);
    let store = connect(&settings.database, ONE_AT_A_TIME).await?;
    let report = crate::crypto::reseal(&store, &cipher, &accounts, batch.max(1)).await;
    store.close().await;
    let report = report.map_err(|error| anyhow::anyhow!("{error}"))?;
    writeln!(
        out,
        "reseal under key version {}:",
        cipher.keyring().current_version()
    )?;
    let mut unreadable = 0;
    for (name, counts) in [
        ("billing_keys", &report.billing_keys),
        ("refund_accounts", &report.refund_accounts),
    ] {
        writeln!(
            out,
            "  {name}: examined={} resealed={} already_current={} unreadable={} changed_meanwhile={}",
            counts.examined, counts.resealed, counts.current, counts.unreadable, counts.changed
        )?;
        for id in &counts.unreadable_ids {
            writeln!(out, "    unreadable {name} id={id}")?;
        }
        unreadable += counts.unreadable;
    }
    Ok(if unreadable == 0 { 0 } else { 1 })
}

/// `payment-service operator hash`: reads a password from `input` (its first line, without the
/// line break) and writes its argon2id PHC string to `out`, for an `OPERATORS_FILE` entry. The
/// password is never echoed or logged. Exit code 0, or 2 for an empty password.
pub fn operator_hash_command(
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u8> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = secrecy::SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    line.clear();
    if secrecy::ExposeSecret::expose_secret(&password).is_empty() {
        anyhow::bail!(
            "no password on standard input (echo -n \"$PASSWORD\" | payment-service operator hash)"
        );
    }
    let hash = crate::console::hash_password(&password).map_err(anyhow::Error::msg)?;
    writeln!(out, "{hash}")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_hash_prints_an_argon2id_hash_of_the_first_line() {
        let mut out = Vec::new();
        let code =
            operator_hash_command(&mut "s3cret pass\nignored\n".as_bytes(), &mut out).unwrap();
        assert_eq!(code, 0);
        let hash = String::from_utf8(out).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("s3cret"));
        let file = format!(
            "[[operators]]\nname = \"kim\"\npassword_hash = {:?}\n",
            hash.trim()
        );
        let path = std::env::temp_dir().join(format!("operators-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, file).unwrap();
        let operators = crate::console::Operators::load(path.to_str()).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(operators.verify("kim", &"s3cret pass".into()));
        assert!(operator_hash_command(&mut "\n".as_bytes(), &mut Vec::new()).is_err());
    }
}
