//! Which addresses a fetch may not reach, and under which rule: every IPv4 and IPv6 range
//! that is not a public unicast address, the cloud metadata addresses first. An IPv6 address
//! that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by the IPv4 inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused. `as_str` is the metric label and the rule named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A scheme other than http and https.
    Scheme,
    /// A cloud instance metadata service (169.254.169.254, fd00:ec2::254, …).
    Metadata,
    Loopback,
    /// RFC 1918, IPv6 site-local and NAT64 local-use.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddress,
    LinkLocal,
    /// IPv6 fc00::/7.
    UniqueLocal,
    Multicast,
    Broadcast,
    Unspecified,
    /// TEST-NET-1/2/3 and 2001:db8::/32.
    Documentation,
    /// Everything else that is not public unicast (IETF, benchmarking, class E, Teredo,
    /// discard-only, outside 2000::/3).
    Reserved,
    /// More redirects than `ingest.fetch_max_redirects`.
    Redirects,
    /// The name resolves to no address.
    NoAddress,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Scheme => "scheme",
            Rule::Metadata => "metadata",
            Rule::Loopback => "loopback",
            Rule::Private => "private",
            Rule::SharedAddress => "shared-address",
            Rule::LinkLocal => "link-local",
            Rule::UniqueLocal => "unique-local",
            Rule::Multicast => "multicast",
            Rule::Broadcast => "broadcast",
            Rule::Unspecified => "unspecified",
            Rule::Documentation => "documentation",
            Rule::Reserved => "reserved",
            Rule::Redirects => "redirects",
            Rule::NoAddress => "no-address",
        }
    }

    /// What the rule covers, for an error a person reads.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Scheme => "only http and https URLs are fetched",
            Rule::Metadata => "a cloud instance metadata address",
            Rule::Loopback => "a loopback address",
            Rule::Private => "a private network address",
            Rule::SharedAddress => "a carrier-grade NAT address (100.64.0.0/10)",
            Rule::LinkLocal => "a link-local address",
            Rule::UniqueLocal => "an IPv6 unique-local address (fc00::/7)",
            Rule::Multicast => "a multicast address",
            Rule::Broadcast => "the broadcast address",
            Rule::Unspecified => "an unspecified address",
            Rule::Documentation => "a documentation address",
            Rule::Reserved => "a reserved address, not public unicast",
            Rule::Redirects => "too many redirects",
            Rule::NoAddress => "the name resolves to no address",
        }
    }
}

/// The rule that refuses `ip`, or `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Rule> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> Option<Rule> {
    const TABLE: &[([u8; 4], u32, Rule)] = &[
        // Metadata first: these lie inside link-local and shared-address space.
        ([169, 254, 169, 254], 32, Rule::Metadata), // AWS, GCP, Azure, OpenStack, …
        ([169, 254, 170, 2], 32, Rule::Metadata),   // ECS task metadata
        ([100, 100, 100, 200], 32, Rule::Metadata), // Alibaba Cloud
        ([0, 0, 0, 0], 8, Rule::Unspecified),
        ([127, 0, 0, 0], 8, Rule::Loopback),
        ([10, 0, 0, 0], 8, Rule::Private),
        ([172, 16, 0, 0], 12, Rule::Private),
        ([192, 168, 0, 0], 16, Rule::Private),
        ([100, 64, 0, 0], 10, Rule::SharedAddress),
        ([169, 254, 0, 0], 16, Rule::LinkLocal),
        ([192, 0, 0, 0], 24, Rule::Reserved),
        ([192, 0, 2, 0], 24, Rule::Documentation),
        ([198, 51, 100, 0], 24, Rule::Documentation),
        ([203, 0, 113, 0], 24, Rule::Documentation),
        ([198, 18, 0, 0], 15, Rule::Reserved),
        ([224, 0, 0, 0], 4, Rule::Multicast),
        ([255, 255, 255, 255], 32, Rule::Broadcast),
        ([240, 0, 0, 0], 4, Rule::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, rule)| *rule)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

/// The IPv4 address an IPv6 one carries: mapped (::ffff:0:0/96), compatible (::/96),
/// NAT64 well-known prefix (64:ff9b::/96) and 6to4 (2002::/16).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if bits >> 32 == 0 && bits > 1 {
        return Some(low);
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return Some(low);
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> Option<Rule> {
    if ip.is_unspecified() {
        return Some(Rule::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Rule::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let table: [(Ipv6Addr, u32, Rule); 9] = [
        (
            Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
            128,
            Rule::Metadata,
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            Rule::UniqueLocal,
        ),
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            Rule::LinkLocal,
        ),
        (
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            10,
            Rule::Private,
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            Rule::Multicast,
        ),
        (
            Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
            48,
            Rule::Private,
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            Rule::Documentation,
        ),
        // Teredo tunnels to an address we cannot judge.
        (
            Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
            32,
            Rule::Reserved,
        ),
        (
            Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
            64,
            Rule::Reserved,
        ),
    ];
    if let Some((_, _, rule)) = table.iter().find(|(net, p, _)| in_v6(ip, *net, *p)) {
        return Some(*rule);
    }
    // Public unicast is 2000::/3; the rest is unassigned or special.
    if !in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some(Rule::Reserved);
    }
    None
}
