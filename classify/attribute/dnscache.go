package attribute

import (
	"net/netip"
	"strings"
	"time"

	"github.com/phonehome/phonehome/event"
)

// Defaults of the DNS correlation cache.
const (
	// DefaultDNSCacheEntries bounds the addresses remembered from DNS
	// answers (about 150 bytes each).
	DefaultDNSCacheEntries = 100_000
	// DefaultDNSMinTTL keeps even TTL-0 answers long enough for the
	// connection the lookup was made for.
	DefaultDNSMinTTL = 60 * time.Second
	// DefaultDNSMaxTTL stops a lying or huge TTL from tying an address to a
	// name for days after the operator's CDN moved it.
	DefaultDNSMaxTTL = 24 * time.Hour
	// maxCNAMEHops bounds the walk from an address record back to the asked
	// name (resolvers cap chains at 8–16).
	maxCNAMEHops = 16
	// maxChainNames is how many names of one chain are kept per address for
	// vendor matching (the asked name, the intermediate CNAMEs, the owner).
	maxChainNames = 4
)

// dnsEntry is what one address was last resolved from.
type dnsEntry struct {
	// asked is the question name the client sent: destination.domain.
	asked string
	// chain holds the names from the asked one to the address record's
	// owner (at most maxChainNames), matched against the signatures when a
	// flow goes to the address.
	chain   [maxChainNames]string
	nchain  uint8
	expires int64 // unix ns
}

// dnsCache maps addresses from DNS answers to the names that led to them,
// whoever asked (client-agnostic: a NAT or a shared resolver hides the
// asker), for as long as the answer's TTL allows.
type dnsCache struct {
	entries        *lru[netip.Addr, dnsEntry]
	minTTL, maxTTL int64
	expired        uint64
	inserted       uint64
	// targetOf is scratch space for one answer's CNAME edges.
	targetOf map[string]string
}

func newDNSCache(limit int, minTTL, maxTTL time.Duration) *dnsCache {
	return &dnsCache{entries: newLRU[netip.Addr, dnsEntry](limit), minTTL: int64(minTTL), maxTTL: int64(maxTTL),
		targetOf: make(map[string]string)}
}

func normName(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// add records the A/AAAA records of a DNS answer, each tied to the asked
// name through the answer's CNAME chain. at is when the answer arrived.
func (c *dnsCache) add(d *event.DNS, at int64) {
	if d == nil || len(d.Answers) == 0 || d.QuestionName == "" {
		return
	}
	asked := normName(d.QuestionName)
	// owner -> alias: walking back from an address record's owner through
	// the CNAMEs reaches the asked name.
	clear(c.targetOf)
	for i := range d.Answers {
		a := &d.Answers[i]
		if a.Type == "CNAME" {
			c.targetOf[normName(a.Data)] = normName(a.Name)
		}
	}
	for i := range d.Answers {
		a := &d.Answers[i]
		if a.Type != "A" && a.Type != "AAAA" {
			continue
		}
		ip, err := netip.ParseAddr(a.Data)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		owner := normName(a.Name)
		var e dnsEntry
		e.asked = asked
		// Collect owner, its aliases... up to the asked name.
		names := [maxCNAMEHops + 1]string{owner}
		n := 1
		reached := owner == asked
		for name := owner; !reached && n <= maxCNAMEHops; {
			alias, ok := c.targetOf[name]
			if !ok || alias == name {
				break
			}
			names[n] = alias
			n++
			name = alias
			reached = alias == asked
		}
		if !reached {
			// An address record unrelated to the question (additional
			// data a resolver volunteered): tie it to its own owner only.
			e.asked = owner
		}
		// Keep the asked name first, then the owner, then the CNAMEs
		// nearest to the asked name.
		e.chain[0] = e.asked
		e.nchain = 1
		if owner != e.asked {
			e.chain[1] = owner
			e.nchain = 2
		}
		top := n - 1 // names[n-1] is the asked name when reached
		if !reached {
			top = n
		}
		for j := top - 1; j >= 1 && int(e.nchain) < maxChainNames; j-- {
			e.chain[e.nchain] = names[j]
			e.nchain++
		}
		ttl := int64(a.TTL) * int64(time.Second)
		ttl = min(max(ttl, c.minTTL), c.maxTTL)
		e.expires = at + ttl
		v, _ := c.entries.put(ip)
		*v = e
		c.inserted++
	}
}

// lookup returns what ip was resolved from, if the answer is still live at
// time now. Expired entries are dropped and counted.
func (c *dnsCache) lookup(ip netip.Addr, now int64) (*dnsEntry, bool) {
	ip = ip.Unmap()
	e, ok := c.entries.get(ip)
	if !ok {
		return nil, false
	}
	if now > e.expires {
		c.entries.delete(ip)
		c.expired++
		return nil, false
	}
	return e, true
}
