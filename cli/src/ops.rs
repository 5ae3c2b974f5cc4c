//! The read and operator commands: `manifest`, `ls`, `show`, `hold`, `release`, `extend`,
//! `sweep`, `audit verify`. Each is one or a few API calls; `--json` prints the registry's
//! answer as is.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::Outcome;
use crate::client::{Client, encode_path, query_pair};

/// `GET /packages` filters, as the API names them.
#[derive(Args)]
pub struct LsArgs {
    #[arg(long)]
    producer: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// open, finalized, deleting, deleted
    #[arg(long)]
    status: Option<String>,
    #[arg(long = "class")]
    retention_class: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, value_name = "TIMESTAMP")]
    created_after: Option<String>,
    #[arg(long, value_name = "TIMESTAMP")]
    created_before: Option<String>,
    /// Metadata equal to VALUE, repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = crate::key_value)]
    meta: Vec<(String, String)>,
    /// Packages per page (1..1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Follow every page (default: the first page only).
    #[arg(long)]
    all: bool,
}

impl LsArgs {
    fn query(&self) -> Vec<String> {
        let mut q = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(query_pair(k, v));
            }
        };
        add("producer", &self.producer);
        add("subject", &self.subject);
        add("status", &self.status);
        add("retention_class", &self.retention_class);
        add("name", &self.name);
        add("created_after", &self.created_after);
        add("created_before", &self.created_before);
        for (k, v) in &self.meta {
            q.push(query_pair(&format!("metadata.{k}"), v));
        }
        q.push(format!("limit={}", self.limit));
        q
    }
}

fn pkg(id: &str) -> String {
    format!("/packages/{}", encode_path(id))
}

/// The manifest's bytes exactly as the registry serves them (canonical JSON, the bytes its
/// `manifest_sha256` is computed over, less that field): JSON either way.
pub async fn manifest(client: &Client, id: &str) -> Result<Outcome> {
    let path = format!("{}/manifest", pkg(id));
    let resp = client
        .send_ok(|| Ok(client.request(reqwest::Method::GET, &path)))
        .await?;
    println!("{}", resp.text().await?);
    Ok(Outcome::Ok)
}

pub async fn ls(client: &Client, args: &LsArgs, json_out: bool) -> Result<Outcome> {
    let base = args.query();
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let next = loop {
        let mut q = base.clone();
        if let Some(c) = &cursor {
            q.push(query_pair("cursor", c));
        }
        let page = client
            .get_json(&format!("/packages?{}", q.join("&")))
            .await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) if args.all => cursor = Some(c.to_string()),
            other => break other.map(str::to_string),
        }
    };
    if json_out {
        println!("{}", json!({"items": items, "next_cursor": next}));
        return Ok(Outcome::Ok);
    }
    for p in &items {
        println!(
            "{}  {:9}  {:16}  {}/{}  {} files  {} bytes  {}",
            p["id"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            p["retention_class"].as_str().unwrap_or("?"),
            p["producer"].as_str().unwrap_or("?"),
            p["name"].as_str().unwrap_or("?"),
            p["file_count"],
            p["total_bytes"],
            p["created_at"].as_str().unwrap_or("?"),
        );
    }
    if let Some(c) = next {
        eprintln!("more packages: --all, or the API's cursor {c}");
    }
    Ok(Outcome::Ok)
}

pub async fn show(client: &Client, id: &str, json_out: bool) -> Result<Outcome> {
    let p = client.get_json(&pkg(id)).await?;
    if json_out {
        println!("{p}");
        return Ok(Outcome::Ok);
    }
    for key in [
        "id",
        "name",
        "producer",
        "subject",
        "status",
        "retention_class",
        "created_at",
        "finalized_at",
        "expires_at",
        "file_count",
        "total_bytes",
        "deletion_eligible",
    ] {
        let v = &p[key];
        println!(
            "{key:18} {}",
            v.as_str().map(str::to_string).unwrap_or(v.to_string())
        );
    }
    println!("{:18} {}", "metadata", p["metadata"]);
    for h in p["holds"].as_array().into_iter().flatten() {
        println!(
            "{:18} {} by {} at {}: {}{}",
            "hold",
            h["id"].as_str().unwrap_or("?"),
            h["created_by"].as_str().unwrap_or("?"),
            h["created_at"].as_str().unwrap_or("?"),
            h["reason"].as_str().unwrap_or(""),
            h["released_at"]
                .as_str()
                .map(|t| format!(" (released {t})"))
                .unwrap_or_default(),
        );
    }
    Ok(Outcome::Ok)
}

fn print(v: &Value, json_out: bool, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{v}");
    } else {
        println!("{}", human(v));
    }
}

pub async fn hold(client: &Client, id: &str, reason: &str, json_out: bool) -> Result<Outcome> {
    let h = client
        .post_json(
            &format!("{}/retention/holds", pkg(id)),
            &json!({ "reason": reason }),
        )
        .await?;
    print(&h, json_out, |h| {
        format!("hold {} applied to {id}", h["id"].as_str().unwrap_or("?"))
    });
    Ok(Outcome::Ok)
}

pub async fn release(
    client: &Client,
    id: &str,
    hold_id: &str,
    reason: &str,
    json_out: bool,
) -> Result<Outcome> {
    let h = client
        .post_json(
            &format!(
                "{}/retention/holds/{}/release",
                pkg(id),
                encode_path(hold_id)
            ),
            &json!({ "reason": reason }),
        )
        .await?;
    print(&h, json_out, |h| {
        format!(
            "hold {hold_id} released at {}",
            h["released_at"].as_str().unwrap_or("?")
        )
    });
    Ok(Outcome::Ok)
}

pub async fn extend(
    client: &Client,
    id: &str,
    until: &str,
    reason: &str,
    json_out: bool,
) -> Result<Outcome> {
    let e = client
        .post_json(
            &format!("{}/retention/extensions", pkg(id)),
            &json!({ "new_expires_at": until, "reason": reason }),
        )
        .await?;
    print(&e, json_out, |e| {
        format!(
            "{id} now expires at {} (was {})",
            e["new_expires_at"].as_str().unwrap_or("?"),
            e["previous_expires_at"].as_str().unwrap_or("never")
        )
    });
    Ok(Outcome::Ok)
}

pub async fn sweep(
    client: &Client,
    dry_run: bool,
    limit: Option<u32>,
    json_out: bool,
) -> Result<Outcome> {
    let limit = limit.map(|l| format!("limit={l}"));
    if dry_run {
        let path = match &limit {
            Some(l) => format!("/admin/sweeps?{l}"),
            None => "/admin/sweeps".to_string(),
        };
        let plan = client.get_json(&path).await?;
        print(&plan, json_out, |p| {
            let mut out = format!("as of {}:", p["as_of"].as_str().unwrap_or("?"));
            for (label, key) in [("would delete", "would_delete"), ("keeps", "kept")] {
                for x in p[key].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n{label:12} {} {}/{} ({})",
                        x["package_id"].as_str().unwrap_or("?"),
                        x["producer"].as_str().unwrap_or("?"),
                        x["name"].as_str().unwrap_or("?"),
                        x["reason"].as_str().unwrap_or("?"),
                    ));
                }
            }
            if p["would_delete"].as_array().is_none_or(Vec::is_empty)
                && p["kept"].as_array().is_none_or(Vec::is_empty)
            {
                out.push_str(" nothing is due");
            }
            if p["truncated"] == true {
                out.push_str("\n(more: raise --limit)");
            }
            out
        });
    } else {
        let report = client.post_json("/admin/sweeps", &json!({})).await?;
        print(&report, json_out, |r| {
            format!(
                "examined {}, deleted {}, held {}, failed {}",
                r["examined"], r["deleted"], r["held"], r["failed"]
            )
        });
    }
    Ok(Outcome::Ok)
}

pub async fn audit_verify(
    client: &Client,
    seq: Option<u64>,
    hash: Option<&str>,
    json_out: bool,
) -> Result<Outcome> {
    let path = match (seq, hash) {
        (Some(s), Some(h)) => format!(
            "/audit/verify?checkpoint_seq={s}&{}",
            query_pair("checkpoint_hash", h)
        ),
        _ => "/audit/verify".to_string(),
    };
    let r = client.get_json(&path).await?;
    let valid = r["valid"] == true;
    print(&r, json_out, |r| {
        if valid {
            format!("valid: {} events checked", r["events_checked"])
        } else {
            format!(
                "INVALID: first invalid event {}{}",
                r["first_invalid_id"],
                r["detail"]
                    .as_str()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )
        }
    });
    Ok(if valid {
        Outcome::Ok
    } else {
        Outcome::Mismatch
    })
}
