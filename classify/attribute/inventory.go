package attribute

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phonehome/phonehome/event"
	"github.com/phonehome/phonehome/signatures"
)

type invKey struct {
	host   hostKey
	vendor string
}

type invState struct {
	first, last    int64
	flows, lookups uint64
	bytes          uint64
	product        string
	productSev     signatures.Severity // severity of the attribution product came from
	purposes       []string
	rules          []string
	evidence       []string
	dirty          bool
}

// InventoryRow is one client host's contact with one vendor.
type InventoryRow struct {
	Host      netip.Addr
	VLANs     []uint16
	Vendor    string
	Product   string // of the strongest attribution
	FirstSeen int64  // unix ns
	LastSeen  int64
	Flows     uint64 // connections attributed to the vendor (DNS lookups aside)
	Lookups   uint64 // DNS transactions for the vendor's names
	Bytes     uint64 // bytes the host sent on those connections
	Purposes  []string
	Rules     []string
	Evidence  []string // "type:value"
}

// lookupFlow reports whether a flow's attribution comes from DNS messages
// only: a lookup through a resolver, not contact with the vendor.
func lookupFlow(ev *event.Event, ms []match) bool {
	if ev.Network.Protocol == "dns" {
		return true
	}
	for i := range ms {
		if !strings.HasPrefix(ms[i].ev.Field, "dns.") {
			return false
		}
	}
	return true
}

// addBounded appends s to list once, up to maxInventoryList entries.
func (a *Attributor) addBounded(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	if len(list) >= maxInventoryList {
		a.stats.EvidenceDropped++
		return list
	}
	return append(list, s)
}

func hasEvidence(list []string, typ, val string) bool {
	for _, s := range list {
		if len(s) == len(typ)+1+len(val) && s[:len(typ)] == typ && s[len(typ)] == ':' && s[len(typ)+1:] == val {
			return true
		}
	}
	return false
}

// noteInventory accounts an attributed event to its (client host, vendor)
// row.
func (a *Attributor) noteInventory(ev *event.Event, ms []match, p int, isDNS bool) {
	if !ev.Source.IP.IsValid() {
		return
	}
	ms = vendorMatches(ms, p)
	p = best(ms)
	sig := ms[p].hit.Sig
	row, created := a.inv.put(invKey{host: hostOf(ev), vendor: sig.Vendor})
	first := ev.Timestamp
	if ev.Start != 0 {
		first = ev.Start
	}
	if created || first < row.first {
		row.first = first
	}
	row.last = max(row.last, ev.Timestamp)
	// Name the product of the strongest attribution, not a catch-all.
	if sev := ms[p].hit.Severity(); sev >= row.productSev {
		row.product, row.productSev = sig.Product, sev
	}
	row.dirty = true
	if isDNS {
		row.lookups++
	} else if ev.Dataset == event.DatasetFlow && ev.Phonehome.Flow != nil && ev.Phonehome.Flow.Final && !lookupFlow(ev, ms) {
		row.flows++
		row.bytes += ev.Source.Bytes
	}
	row.purposes = a.addBounded(row.purposes, sig.Purpose.String())
	for _, m := range ms {
		row.rules = a.addBounded(row.rules, m.hit.Sig.ID)
		if !hasEvidence(row.evidence, m.ev.Type, m.ev.Value) {
			row.evidence = a.addBounded(row.evidence, m.ev.Type+":"+m.ev.Value)
		}
	}
}

// Inventory returns the rows, sorted by host then vendor.
func (a *Attributor) Inventory() []InventoryRow {
	var rows []InventoryRow
	a.inv.each(func(k invKey, v *invState) {
		rows = append(rows, rowOf(k, v))
	})
	sortRows(rows)
	return rows
}

func rowOf(k invKey, v *invState) InventoryRow {
	r := InventoryRow{Host: k.host.ip, Vendor: k.vendor, Product: v.product, FirstSeen: v.first, LastSeen: v.last,
		Flows: v.flows, Lookups: v.lookups, Bytes: v.bytes,
		Purposes: slices.Clone(v.purposes), Rules: slices.Clone(v.rules), Evidence: slices.Clone(v.evidence)}
	if k.host.nvlan > 0 {
		r.VLANs = slices.Clone(k.host.vlans[:k.host.nvlan])
	}
	return r
}

func sortRows(rows []InventoryRow) {
	slices.SortFunc(rows, func(x, y InventoryRow) int {
		if c := x.Host.Compare(y.Host); c != 0 {
			return c
		}
		if c := slices.Compare(x.VLANs, y.VLANs); c != 0 {
			return c
		}
		return cmp.Compare(x.Vendor, y.Vendor)
	})
}

// emitInventory emits one phonehome.inventory event per row (only the rows
// changed since the last report when onlyDirty).
func (a *Attributor) emitInventory(now int64, onlyDirty bool, emit func(*event.Event)) {
	var rows []InventoryRow
	a.inv.each(func(k invKey, v *invState) {
		if onlyDirty && !v.dirty {
			return
		}
		v.dirty = false
		rows = append(rows, rowOf(k, v))
	})
	sortRows(rows)
	for _, r := range rows {
		ev := &event.Event{
			Timestamp: now,
			Kind:      "state",
			Category:  []string{"network"},
			Type:      []string{"info"},
			Dataset:   event.DatasetInventory,
			Action:    "vendor_inventory",
			Start:     r.FirstSeen,
			End:       r.LastSeen,
			Duration:  r.LastSeen - r.FirstSeen,
		}
		ev.Source.IP = r.Host
		ev.Network.NumVLANs = uint8(min(len(r.VLANs), 3))
		copy(ev.Network.VLANs[:], r.VLANs)
		if len(r.VLANs) > 0 {
			ev.Phonehome.VLANIDs = r.VLANs
		}
		ph := &ev.Phonehome
		ph.Vendor, ph.Product = r.Vendor, r.Product
		ph.Purpose = r.Purposes
		ph.Policy = a.policies[strings.ToLower(r.Vendor)]
		ph.Inventory = &event.Inventory{FirstSeen: r.FirstSeen, LastSeen: r.LastSeen, Flows: r.Flows, Bytes: r.Bytes,
			Purposes: r.Purposes, Rules: r.Rules, Lookups: r.Lookups, Evidence: r.Evidence}
		ev.Related.IP = []netip.Addr{r.Host}
		emit(ev)
	}
}

// maxTableEvidence is how many evidence items a table row spells out.
const maxTableEvidence = 3

// WriteInventory writes the inventory as a readable table (the replay's
// --summary).
func (a *Attributor) WriteInventory(w io.Writer) error {
	st := a.Stats()
	fmt.Fprintf(w, "attribution: %d events tagged, %d alerts (%d folded by the window, %d escalated, %d large uploads); "+
		"DNS cache %d addresses (%d evicted, %d expired); %d flows and %d evidence items dropped at their bounds\n",
		st.Attributed, st.Alerts, st.Suppressed, st.Escalated, st.Uploads, st.DNSEntries, st.DNSEvicted, st.DNSExpired,
		st.FlowsEvicted, st.EvidenceDropped)
	return WriteInventoryTable(w, a.Inventory())
}

// WriteInventoryTable writes rows as a table, one line per (host, vendor).
func WriteInventoryTable(w io.Writer, rows []InventoryRow) error {
	fmt.Fprintf(w, "vendor inventory: %d host/vendor pair(s)\n", len(rows))
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tVENDOR\tFIRST SEEN\tLAST SEEN\tFLOWS\tLOOKUPS\tBYTES OUT\tPURPOSES\tRULES\tEVIDENCE")
	for _, r := range rows {
		host := r.Host.String()
		if len(r.VLANs) > 0 {
			var vs []string
			for _, v := range r.VLANs {
				vs = append(vs, fmt.Sprint(v))
			}
			host += " vlan " + strings.Join(vs, "/")
		}
		evs := r.Evidence
		more := ""
		if len(evs) > maxTableEvidence {
			more = fmt.Sprintf(" (+%d)", len(evs)-maxTableEvidence)
			evs = evs[:maxTableEvidence]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s%s\n", host, r.Vendor,
			tableTime(r.FirstSeen), tableTime(r.LastSeen), r.Flows, r.Lookups, r.Bytes,
			strings.Join(r.Purposes, ","), strings.Join(r.Rules, ","), strings.Join(evs, ", "), more)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("attribute: write inventory: %w", err)
	}
	return nil
}

func tableTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05")
}
