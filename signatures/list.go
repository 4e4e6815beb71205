package signatures

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// maxListMatchers bounds how many matcher values one List row spells out;
// the rest are counted.
const maxListMatchers = 4

// List writes a readable table of the set: id, vendor, product, purpose,
// severity (with the ECS number), confidence and matchers, then each
// vendor's policies.
func List(w io.Writer, s *Set) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVENDOR\tPRODUCT\tPURPOSE\tSEVERITY\tCONFIDENCE\tMATCHERS")
	for _, sig := range s.sigs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s(%d)\t%s\t%s\n", sig.ID, sig.Vendor, sig.Product, sig.Purpose,
			sig.Severity, sig.Severity.ECS(), sig.Confidence, matcherSummary(sig.Matchers))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("signatures: list: %w", err)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VENDOR\tJURISDICTION\tDATE\tINSTRUMENT")
	for _, v := range s.vendors {
		for _, p := range v.Policies {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, p.Jurisdiction, p.Date, p.Instrument)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("signatures: list: %w", err)
	}
	return nil
}

// matcherSummary renders matchers as "kind=value" with port and weak marks,
// eliding values beyond maxListMatchers.
func matcherSummary(ms []Matcher) string {
	var b strings.Builder
	for i := range ms {
		if i == maxListMatchers {
			fmt.Fprintf(&b, " (+%d more)", len(ms)-i)
			break
		}
		m := &ms[i]
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", m.Kind, m.Value)
		if len(m.Ports) > 0 {
			ports := make([]string, len(m.Ports))
			for j, r := range m.Ports {
				ports[j] = r.String()
			}
			fmt.Fprintf(&b, ":%s", strings.Join(ports, ","))
		}
		if m.Weak {
			b.WriteString("[weak]")
		}
	}
	return b.String()
}

// ErrCheckFailed is returned by Check when any file has errors.
var ErrCheckFailed = errors.New("signatures: check failed")

// Check validates paths (files or directories, as CheckFiles) and writes one
// "file:line:col: message" line per error, then a summary line. It returns
// ErrCheckFailed when there were errors.
func Check(w io.Writer, paths ...string) error {
	errs := CheckFiles(paths...)
	for _, err := range errs {
		fmt.Fprintln(w, err)
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "%d error(s)\n", len(errs))
		return ErrCheckFailed
	}
	fmt.Fprintf(w, "ok: %s\n", strings.Join(paths, " "))
	return nil
}
