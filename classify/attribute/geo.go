package attribute

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/oschwald/geoip2-golang/v2"

	"github.com/phonehome/phonehome/event"
)

// GeoLookup enriches an address with its country and autonomous system.
// Lookup returns the zero Geo when nothing is known. Implementations are
// called from the Attributor's goroutine only.
type GeoLookup interface {
	Lookup(ip netip.Addr) event.Geo
}

// MMDB looks addresses up in MaxMind GeoLite2/GeoIP2 Country (or City) and
// ASN databases. Either may be absent.
type MMDB struct {
	country, asn *geoip2.Reader
	// Errors counts failed lookups (a corrupt database section).
	Errors uint64
}

var _ GeoLookup = (*MMDB)(nil)

// OpenMMDB opens the country and ASN databases; an empty path skips that
// database. The caller closes the result.
func OpenMMDB(countryPath, asnPath string) (*MMDB, error) {
	m := &MMDB{}
	if countryPath != "" {
		r, err := geoip2.Open(countryPath)
		if err != nil {
			return nil, fmt.Errorf("geoip: open country database %s: %w", countryPath, err)
		}
		m.country = r
	}
	if asnPath != "" {
		r, err := geoip2.Open(asnPath)
		if err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("geoip: open ASN database %s: %w", asnPath, err)
		}
		m.asn = r
	}
	// Fail at start rather than on every lookup when a file is of the
	// wrong kind (an ASN file given as --geoip-country).
	probe := netip.MustParseAddr("1.1.1.1")
	if m.country != nil {
		if _, err := m.country.Country(probe); err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("geoip: %s is not a country database: %w", countryPath, err)
		}
	}
	if m.asn != nil {
		if _, err := m.asn.ASN(probe); err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("geoip: %s is not an ASN database: %w", asnPath, err)
		}
	}
	return m, nil
}

// Lookup implements GeoLookup.
func (m *MMDB) Lookup(ip netip.Addr) event.Geo {
	var g event.Geo
	if !ip.IsValid() {
		return g
	}
	ip = ip.Unmap()
	if m.country != nil {
		c, err := m.country.Country(ip)
		switch {
		case err != nil:
			m.Errors++
		case c.Country.ISOCode != "":
			g.CountryISOCode = c.Country.ISOCode
		default:
			g.CountryISOCode = c.RegisteredCountry.ISOCode
		}
	}
	if m.asn != nil {
		a, err := m.asn.ASN(ip)
		if err != nil {
			m.Errors++
		} else if a.AutonomousSystemNumber <= 0xffffffff {
			g.ASNumber = uint32(a.AutonomousSystemNumber)
			g.ASOrg = a.AutonomousSystemOrganization
		}
	}
	return g
}

// Close closes the databases.
func (m *MMDB) Close() error {
	var errs []error
	if m.country != nil {
		errs = append(errs, m.country.Close())
	}
	if m.asn != nil {
		errs = append(errs, m.asn.Close())
	}
	return errors.Join(errs...)
}
