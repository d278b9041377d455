//! The little of the DNS wire format (RFC 1035) the embedded resolver needs: read the question
//! of a query, answer it with A or PTR records, or with an error code.
use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;
pub const RCODE_SERVFAIL: u16 = 2;
pub const RCODE_NXDOMAIN: u16 = 3;

/// The question of a standard query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Bytes of the header plus the question (copied into answers).
    pub question_end: usize,
}

/// Parses a query with exactly one question; `None` for anything else (responses, other opcodes,
/// compression in the question, truncated input).
pub fn parse_query(b: &[u8]) -> Option<Query> {
    if b.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([b[2], b[3]]);
    let qd = u16::from_be_bytes([b[4], b[5]]);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qd != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels: Vec<String> = vec![];
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        let l = b.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += len;
    }
    let t = b.get(i..i + 4)?;
    Some(Query {
        id: u16::from_be_bytes([b[0], b[1]]),
        name: labels.join("."),
        qtype: u16::from_be_bytes([t[0], t[1]]),
        qclass: u16::from_be_bytes([t[2], t[3]]),
        question_end: i + 4,
    })
}

/// Header + question of `req` turned into a response with `rcode` and `answers` records.
fn head(req: &[u8], q: &Query, rcode: u16, answers: u16) -> Vec<u8> {
    let rd = u16::from_be_bytes([req[2], req[3]]) & 0x0100;
    // QR, AA, RD as asked, RA.
    let flags = 0x8000 | 0x0400 | rd | 0x0080 | (rcode & 0xf);
    let mut out = Vec::with_capacity(q.question_end + 16 * answers as usize);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&req[12..q.question_end]);
    out
}

/// Record header pointing back at the question's name (offset 12).
fn rr(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// An answer with one A record per address (none: an empty NOERROR answer, e.g. for AAAA of a
/// known name, so the client does not wait or ask elsewhere).
pub fn a_answer(req: &[u8], q: &Query, ips: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = head(req, q, 0, ips.len() as u16);
    for ip in ips {
        rr(&mut out, TYPE_A, ttl, &ip.octets());
    }
    out
}

/// A PTR answer naming `target` (dotted, without the trailing dot).
pub fn ptr_answer(req: &[u8], q: &Query, target: &str, ttl: u32) -> Vec<u8> {
    let mut out = head(req, q, 0, 1);
    let mut rdata = vec![];
    for l in target.split('.').filter(|l| !l.is_empty()) {
        let l = &l.as_bytes()[..l.len().min(63)];
        rdata.push(l.len() as u8);
        rdata.extend_from_slice(l);
    }
    rdata.push(0);
    rr(&mut out, TYPE_PTR, ttl, &rdata);
    out
}

/// A response without records and with `rcode` (e.g. [`RCODE_SERVFAIL`]).
pub fn error(req: &[u8], q: &Query, rcode: u16) -> Vec<u8> {
    head(req, q, rcode, 0)
}

/// `4.3.2.1.in-addr.arpa` -> `1.2.3.4`.
pub fn ptr_address(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as `dig`/glibc sends it (RD set), with an EDNS OPT record appended.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for l in name.split('.') {
            b.push(l.len() as u8);
            b.extend_from_slice(l.as_bytes());
        }
        b.push(0);
        b.extend_from_slice(&qtype.to_be_bytes());
        b.extend_from_slice(&CLASS_IN.to_be_bytes());
        b.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn parses_a_question() {
        let b = query("Web.AppNet", TYPE_A);
        let q = parse_query(&b).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name, "web.appnet");
        assert_eq!(q.qtype, TYPE_A);
        assert_eq!(q.question_end, 12 + 12 + 4);
        assert!(parse_query(&b[..20]).is_none());
        let mut resp = b.clone();
        resp[2] |= 0x80;
        assert!(parse_query(&resp).is_none());
    }

    #[test]
    fn answers_with_a_records() {
        let b = query("web", TYPE_A);
        let q = parse_query(&b).unwrap();
        let ip: Ipv4Addr = "10.5.0.2".parse().unwrap();
        let r = a_answer(&b, &q, &[ip], 600);
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "QR");
        assert_eq!(r[2] & 0x01, 0x01, "RD copied");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(u16::from_be_bytes([r[10], r[11]]), 0, "OPT dropped");
        assert_eq!(&r[r.len() - 4..], &ip.octets());
        assert_eq!(&r[q.question_end..q.question_end + 4], &[0xc0, 0x0c, 0, 1]);
        let empty = a_answer(&b, &q, &[], 600);
        assert_eq!(empty.len(), q.question_end);
        assert_eq!(error(&b, &q, RCODE_NXDOMAIN)[3] & 0x0f, 3);
    }

    #[test]
    fn ptr_names() {
        assert_eq!(ptr_address("2.0.5.10.in-addr.arpa"), Some("10.5.0.2".parse().unwrap()));
        assert_eq!(ptr_address("2.0.5.in-addr.arpa"), None);
        let b = query("2.0.5.10.in-addr.arpa", TYPE_PTR);
        let q = parse_query(&b).unwrap();
        let r = ptr_answer(&b, &q, "web.appnet", 600);
        assert!(r.ends_with(&[3, b'w', b'e', b'b', 6, b'a', b'p', b'p', b'n', b'e', b't', 0]));
    }
}
