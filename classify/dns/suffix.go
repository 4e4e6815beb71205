package dns

import (
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Split divides a name at its public suffix with ECS semantics:
// "www.example.co.uk" gives registeredDomain "example.co.uk", subdomain "www"
// and topLevelDomain "co.uk" (dns.question.registered_domain, .subdomain,
// .top_level_domain). The name is sanitised first (SanitizeName), so case and
// a trailing dot do not matter.
//
//   - The empty name, the root "." and names with empty labels give three
//     empty strings.
//   - IP literals ("192.0.2.1", "2001:db8::1") give three empty strings: they
//     have no suffix.
//   - A name that is itself a public suffix ("co.uk", "com") has no registered
//     domain: it gives ("", "", name).
//   - Suffixes not on the list follow the list's default rule "*", so
//     "printer.lan" gives ("printer.lan", "", "lan") and mDNS "host.local" gives
//     ("host.local", "", "local").
//   - Reverse names follow the list too, where in-addr.arpa and ip6.arpa are
//     suffixes: "4.3.2.1.in-addr.arpa" gives ("1.in-addr.arpa", "4.3.2",
//     "in-addr.arpa").
//   - Labels holding an escaped dot ("a\.b.example.com") are split at every
//     dot, escaped or not: the list has no such labels, so only the subdomain
//     can be affected.
func Split(name string) (registeredDomain, subdomain, topLevelDomain string) {
	name = SanitizeName(name)
	if name == "" || name == "." || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return "", "", ""
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", "", ""
	}
	suffix, _ := publicsuffix.PublicSuffix(name)
	if suffix == name {
		return "", "", suffix
	}
	registered, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return "", "", suffix
	}
	sub := strings.TrimSuffix(strings.TrimSuffix(name, registered), ".")
	return registered, sub, suffix
}
