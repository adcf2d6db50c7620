//! `linksnap net`: the running server's connections (`stats`, asked over the data
//! directory's socket) and bans (kept in the library, so they work with or without a
//! server; through a server they apply at once).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::BodyExt as _;
use linksnap_server::json::rfc3339;
use linksnap_store::Accounts;
use serde_json::Value;

use crate::exit::{Code, UsageError};
use crate::library_cmds::Term;

/// Arguments of `linksnap net`.
#[derive(Debug, Args)]
pub struct NetArgs {
    #[command(subcommand)]
    action: NetAction,
}

#[derive(Debug, Subcommand)]
enum NetAction {
    /// Connections of the running server: per listener, per TCP state (the kernel's view
    /// of our ports), per client address (most first), /proc/net/sockstat, refusals.
    Stats {
        #[arg(long)]
        json: bool,
        /// Also list every connection with its TCP_INFO (rtt, retransmits, cwnd…).
        #[arg(long)]
        connections: bool,
    },
    /// Refuse an address or range at accept (`192.0.2.7`, `2001:db8::/64`).
    Ban {
        #[arg(value_name = "ADDR|CIDR")]
        net: String,
        /// For this long (e.g. 1h, 7d); default until lifted.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
    /// Lift a ban (the range exactly as banned).
    Unban {
        #[arg(value_name = "ADDR|CIDR")]
        net: String,
    },
    /// The bans in force.
    Bans {
        #[arg(long)]
        json: bool,
    },
}

impl NetArgs {
    /// `stats` describes a running server and is asked of it directly.
    pub fn is_stats(&self) -> bool {
        matches!(self.action, NetAction::Stats { .. })
    }
}

/// `net stats`: GET /api/v1/net/stats over the data directory's socket.
pub async fn stats(data: Option<&Path>, args: NetArgs) -> anyhow::Result<Code> {
    let NetAction::Stats { json, connections } = args.action else {
        unreachable!("only stats is asked of the server")
    };
    let dir = linksnap_store::datadir::resolve(data)?;
    let socket = dir.join(linksnap_server::SOCKET_NAME);
    let stream = tokio::net::UnixStream::connect(&socket).await.map_err(|e| {
        anyhow::anyhow!(
            "no server is running on {} ({}: {e}); `net stats` describes a running `linksnap serve`",
            dir.display(),
            socket.display()
        )
    })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("the server's socket")?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/api/v1/net/stats")
        .header("host", "linksnap")
        .body(http_body_util::Empty::<Bytes>::new())?;
    let res = sender
        .send_request(req)
        .await
        .context("asking the server")?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        anyhow::bail!(
            "the server answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut out = std::io::stdout().lock();
    if json {
        out.write_all(&body)?;
        writeln!(out)?;
        return Ok(Code::Ok);
    }
    let v: Value = serde_json::from_slice(&body).context("the server's answer")?;
    print_stats(&mut out, &v, connections)?;
    Ok(Code::Ok)
}

fn print_stats(out: &mut impl std::io::Write, v: &Value, connections: bool) -> std::io::Result<()> {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    writeln!(out, "listeners")?;
    for l in list("listeners") {
        writeln!(
            out,
            "  {:<40} {:>6}",
            l["addr"].as_str().unwrap_or(""),
            l["connections"]
        )?;
    }
    let states: Vec<String> = v["states"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| format!("{k} {n}")).collect())
        .unwrap_or_default();
    writeln!(out, "tcp states (kernel, our ports)  {}", states.join("  "))?;
    writeln!(out, "peers (most connections first)")?;
    for p in list("peers") {
        writeln!(
            out,
            "  {:<40} {:>6}",
            p["addr"].as_str().unwrap_or(""),
            p["connections"]
        )?;
    }
    let sockstat: Vec<String> = v["sockstat"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("tcp_") || k.starts_with("sockets_"))
                .map(|(k, n)| format!("{k} {n}"))
                .collect()
        })
        .unwrap_or_default();
    writeln!(out, "sockstat  {}", sockstat.join("  "))?;
    let l = &v["limits"];
    writeln!(
        out,
        "limits  max {} connections, {} per address; refused: {} over the cap, {} banned; {} rate-limited; {} automatic bans; {} accept back-offs; {} accepted",
        l["max_connections"],
        l["max_conns_per_ip"],
        l["refused_per_ip_cap"],
        l["refused_banned"],
        l["rate_limited"],
        l["automatic_bans"],
        l["accept_backoffs"],
        l["accepted_total"]
    )?;
    let m = &v["memory"];
    let mib = |k: &str| m[k].as_u64().unwrap_or(0) / (1 << 20);
    writeln!(
        out,
        "memory  server {} MiB resident, {} MiB proportional; {} child processes (a browser engine's Chromium) {} MiB proportional",
        mib("server_rss_bytes"),
        mib("server_pss_bytes"),
        m["children"],
        mib("children_pss_bytes")
    )?;
    if connections {
        writeln!(out, "connections")?;
        for c in list("connections") {
            let tcp = &c["tcp"];
            let info = if tcp.is_null() {
                String::new()
            } else {
                format!(
                    "{} rtt {}/{} µs retrans {} cwnd {} unacked {} lost {}",
                    tcp["state"].as_str().unwrap_or(""),
                    tcp["rtt_us"],
                    tcp["rttvar_us"],
                    tcp["total_retrans"],
                    tcp["cwnd"],
                    tcp["unacked"],
                    tcp["lost"]
                )
            };
            writeln!(
                out,
                "  #{:<6} {:<28} {:<7} {:>5} req {:>9} B in {:>9} B out  {}",
                c["id"],
                c["peer"].as_str().unwrap_or(""),
                c["activity"].as_str().unwrap_or(""),
                c["requests"],
                c["bytes_in"],
                c["bytes_out"],
                info
            )?;
        }
    }
    Ok(())
}

/// `net ban|unban|bans`, on the library (here or inside the server).
pub async fn bans(library: &Accounts, t: &mut Term, args: NetArgs) -> anyhow::Result<Code> {
    match args.action {
        NetAction::Stats { .. } => {
            anyhow::bail!("`net stats` asks the server itself, over the data directory's socket")
        }
        NetAction::Ban {
            net,
            duration,
            reason,
        } => {
            let (range, expires_at) = linksnap_server::config::parse_ban(&net, duration.as_deref())
                .map_err(UsageError)?;
            library.ban(range, expires_at, reason.trim(), false).await?;
            writeln!(
                t.err,
                "linksnap: banned {range} {}",
                expires_at.map_or_else(
                    || "until lifted".to_owned(),
                    |e| format!("until {}", rfc3339(e))
                )
            )?;
            Ok(Code::Ok)
        }
        NetAction::Unban { net } => {
            let range = linksnap_server::config::parse_net(net.trim()).map_err(UsageError)?;
            if library.unban(range).await? {
                writeln!(t.err, "linksnap: lifted the ban of {range}")?;
                Ok(Code::Ok)
            } else {
                Err(UsageError(format!("{range} is not banned (see `linksnap net bans`)")).into())
            }
        }
        NetAction::Bans { json } => {
            let bans = library.bans().await?;
            if json {
                let v: Vec<Value> = bans
                    .iter()
                    .map(|b| {
                        serde_json::json!({
                            "net": b.net.to_string(), "reason": b.reason, "automatic": b.automatic,
                            "created_at": rfc3339(b.created_at), "expires_at": b.expires_at.map(rfc3339),
                        })
                    })
                    .collect();
                writeln!(t.out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                for b in &bans {
                    writeln!(
                        t.out,
                        "{:<24} {:<28} {}{}",
                        b.net.to_string(),
                        b.expires_at.map_or_else(
                            || "until lifted".to_owned(),
                            |e| format!("until {}", rfc3339(e))
                        ),
                        if b.automatic { "[auto] " } else { "" },
                        b.reason
                    )?;
                }
            }
            Ok(Code::Ok)
        }
    }
}
