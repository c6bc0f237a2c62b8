//! `ports:` entries: the short syntax (`[ip:][published:]target[/proto]`, IPv6 in brackets),
//! numbers, and the long mapping.

use std::net::IpAddr;

use serde_norway::Value;

use super::ctx::Ctx;
use super::values::scalar;
use crate::model::error::ModelError;
use crate::model::lines::join;
use crate::model::{Port, Protocol, wire};

pub(super) fn port(ctx: &Ctx, path: &str, v: Value) -> Result<Port, ModelError> {
    let hint = "write \"8081\", \"8081:8081\", \"127.0.0.1:8081:8081\" or {target: 8081, published: 8081, host_ip: 127.0.0.1}";
    let bad = |message: String| ctx.invalid(path, message, hint);
    let port_number = |raw: &str, what: &str| -> Result<u16, ModelError> {
        if raw.contains('-') {
            return Err(ctx.unsupported(path, "port ranges", "publish each port on its own"));
        }
        raw.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("{what} `{raw}` is not a port number (1-65535)")))
    };
    let protocol = |raw: &str| match raw {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(bad(format!("unknown protocol `{other}`; use tcp or udp"))),
    };
    let ip = |raw: &str| raw.parse::<IpAddr>().map_err(|_| bad(format!("`{raw}` is not an IP address")));
    match v {
        Value::Number(n) => {
            let raw = n.to_string();
            Ok(Port {
                host_ip: None,
                published: None,
                target: port_number(&raw, "the container port")?,
                protocol: Protocol::Tcp,
            })
        }
        Value::String(s) => {
            let (spec, proto) = s
                .split_once('/')
                .map_or((s.as_str(), Protocol::Tcp), |(a, b)| (a, protocol(b).unwrap_or_default()));
            if let Some((_, b)) = s.split_once('/') {
                protocol(b)?;
            }
            let (host_ip, rest) = match spec.strip_prefix('[') {
                Some(v6) => {
                    let (addr, rest) = v6
                        .split_once("]:")
                        .ok_or_else(|| bad(format!("`{s}`: expected [address]:published:target")))?;
                    (Some(ip(addr)?), rest)
                }
                None => match spec.matches(':').count() {
                    2 => {
                        let (addr, rest) = spec.split_once(':').unwrap_or_default();
                        (Some(ip(addr)?), rest)
                    }
                    0 | 1 => (None, spec),
                    _ => return Err(bad(format!("`{s}` has too many `:`"))),
                },
            };
            let (published, target) = match rest.split_once(':') {
                Some(("", t)) => (None, t),
                Some((p, t)) => (Some(port_number(p, "the published port")?), t),
                None if host_ip.is_some() => {
                    return Err(bad(format!("`{s}`: expected address:published:target")));
                }
                None => (None, rest),
            };
            Ok(Port {
                host_ip,
                published,
                target: port_number(target, "the container port")?,
                protocol: proto,
            })
        }
        v @ Value::Mapping(_) => {
            let long: wire::PortLong = ctx.typed(path, v)?;
            let target =
                port_number(&scalar(ctx, &join(path, "target"), long.target)?, "the container port")?;
            let published = match long.published {
                None | Some(Value::Null) => None,
                Some(p) => {
                    let raw = scalar(ctx, &join(path, "published"), p)?;
                    if raw.is_empty() { None } else { Some(port_number(&raw, "the published port")?) }
                }
            };
            let host_ip = long.host_ip.as_deref().map(ip).transpose()?;
            let protocol = long.protocol.as_deref().map(protocol).transpose()?.unwrap_or_default();
            Ok(Port { host_ip, published, target, protocol })
        }
        _ => Err(bad("a port is a string, a number or a mapping".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::load::test_support::{ctx, yaml};

    #[test]
    fn short_ports() {
        let p = |s: &str| port(&ctx(), "p", Value::String(s.into())).unwrap();
        assert_eq!(p("8081"), Port { host_ip: None, published: None, target: 8081, protocol: Protocol::Tcp });
        assert_eq!(p("9000:8081").published, Some(9000));
        let full = p("127.0.0.1:8081:8081");
        assert_eq!(full.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((full.published, full.target), (Some(8081), 8081));
        assert_eq!(p("127.0.0.1::8081").published, None);
        assert_eq!(p("[::1]:8081:8081").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("53:53/udp").protocol, Protocol::Udp);
        assert_eq!(port(&ctx(), "p", yaml("8081")).unwrap().target, 8081);
    }

    #[test]
    fn long_ports() {
        let v = yaml("{target: 8081, published: \"9001\", host_ip: 127.0.0.1, protocol: tcp}");
        let p = port(&ctx(), "p", v).unwrap();
        assert_eq!((p.published, p.target), (Some(9001), 8081));
        let err = port(&ctx(), "services.a.ports[0]", yaml("{target: 1, mode: host}")).unwrap_err();
        assert!(err.to_string().contains("services.a.ports[0].mode"), "{err}");
    }

    #[test]
    fn bad_ports() {
        for bad in ["0", "70000", "a:b", "1.2.3:80:80", "8000-8010:8000-8010", "80/sctp", "1:2:3:4"] {
            assert!(port(&ctx(), "p", Value::String(bad.into())).is_err(), "{bad}");
        }
    }
}
