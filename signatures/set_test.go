package signatures

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const kasperskyMerge = `format: phonehome-signatures/v1
vendor:
  name: kaspersky
  policies:
    - {jurisdiction: XX, instrument: Local rule, date: 2025-01-01, references: [https://intranet.example/rule]}
disable: [KL-DNSFB-001]
signatures:
  - id: KL-DOM-002
    product: override
    purpose: brand
    severity: medium
    confidence: high
    description: local override of the kaspersky.com catch-all
    references: [https://intranet.example/why]
    match:
      - domain_suffix: kaspersky.com
        ports: [443]
  - id: LOCAL-KL-001
    product: lab capture
    purpose: reputation
    severity: high
    confidence: medium
    description: locally captured KSN JA3
    references: [https://intranet.example/capture]
    match:
      - ja3: 00112233445566778899aabbccddeeff
`

func TestLoadMergeOverride(t *testing.T) {
	def, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"kaspersky.yaml": kasperskyMerge, "notes.txt": "not yaml"})
	s, err := Load(true, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != def.Len()+1-1 {
		t.Errorf("len = %d, want %d (one added, one disabled)", s.Len(), def.Len())
	}
	if s.Signature("KL-DNSFB-001") != nil {
		t.Error("disabled signature still present")
	}
	if got := s.Signature("KL-DOM-002"); got == nil || got.Product != "override" || got.Severity != SeverityMedium {
		t.Errorf("KL-DOM-002 not overridden: %+v", got)
	}
	if def.Signature("KL-DOM-002").Product == "override" {
		t.Error("override leaked into the default set")
	}
	if len(s.MatchJA3("00112233445566778899AABBCCDDEEFF", nil)) != 1 {
		t.Error("added signature not matched")
	}
	// Order: the override keeps the default's position.
	var pos, defPos int
	for i, sig := range s.Signatures() {
		if sig.ID == "KL-DOM-002" {
			pos = i
		}
	}
	for i, sig := range def.Signatures() {
		if sig.ID == "KL-DOM-002" {
			defPos = i
		}
	}
	if pos != defPos-1 { // KL-DNSFB-001 precedes it and was removed
		t.Errorf("override moved from %d to %d", defPos, pos)
	}
	v := s.Vendor("KASPERSKY")
	if v == nil || v.Name != "Kaspersky" {
		t.Fatalf("vendor lookup: %+v", v)
	}
	if n := len(v.Policies); n != len(def.Vendor("Kaspersky").Policies)+1 || v.Policies[n-1].Jurisdiction != "XX" {
		t.Errorf("policy not merged: %d policies", n)
	}
}

func TestLoadReplaceVendor(t *testing.T) {
	dir := writeFiles(t, map[string]string{"k.yml": strings.Replace(strings.Replace(kasperskyMerge,
		"disable: [KL-DNSFB-001]\n", "mode: replace\n", 1), "name: kaspersky", "name: Kaspersky", 1)})
	s, err := Load(true, dir)
	if err != nil {
		t.Fatal(err)
	}
	var kl int
	for _, sig := range s.Signatures() {
		if sig.Vendor == "Kaspersky" {
			kl++
		}
	}
	if kl != 2 {
		t.Errorf("replace kept %d Kaspersky signatures, want 2", kl)
	}
	if len(s.Vendor("Kaspersky").Policies) != 1 {
		t.Errorf("replace kept default policies")
	}
	if s.Signature("Q360-DOM-001") == nil {
		t.Error("replace touched another vendor")
	}
	if len(s.MatchDomain("s01.upd.kaspersky.com", nil)) != 1 {
		t.Errorf("replaced signatures still match: %v", ids(s.MatchDomain("s01.upd.kaspersky.com", nil)))
	}
}

func TestLoadErrors(t *testing.T) {
	other := strings.Replace(kasperskyMerge, "name: kaspersky", "name: Acme", 1)
	other = strings.Replace(other, "disable: [KL-DNSFB-001]\n", "", 1)
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"cross-vendor id": {map[string]string{"a.yaml": other}, `already belongs to vendor Kaspersky`},
		"unknown disable": {map[string]string{"a.yaml": strings.Replace(kasperskyMerge, "KL-DNSFB-001", "KL-NOPE", 1)},
			`disable: no loaded signature has id "KL-NOPE"`},
		"dup across files": {map[string]string{"a.yaml": validHead, "b.yaml": validHead},
			`b.yaml:5: duplicate signature id "A-1" (also `},
		"broken file": {map[string]string{"a.yaml": validHead + "bogus: 1\n"}, `a.yaml:14:1: file: unknown key "bogus"`},
	}
	for name, c := range cases {
		dir := writeFiles(t, c.files)
		s, err := Load(true, dir)
		if err == nil || s != nil {
			t.Errorf("%s: load succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q lacks %q", name, err, c.want)
		}
	}
	if _, err := Load(false, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing dir accepted")
	}
}

func TestLoadDirAndCheck(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": validHead,
		"b.yaml": strings.Replace(validHead, "A-1", "B-1", 1)})
	files, err := LoadDir(dir)
	if err != nil || len(files) != 2 || files[0].Signatures[0].ID != "A-1" || files[1].Signatures[0].Vendor != "Acme" {
		t.Fatalf("LoadDir: %v %+v", err, files)
	}
	if errs := CheckFiles(dir); len(errs) != 0 {
		t.Errorf("CheckFiles(valid dir) = %v", errs)
	}
	bad := writeFiles(t, map[string]string{"x.yaml": strings.Replace(validHead, "a.acme.example", "192.0.2.1/24", 1)})
	errs := CheckFiles(filepath.Join(bad, "x.yaml"), filepath.Join(dir, "a.yaml"), filepath.Join(bad, "nope.yaml"))
	if len(errs) != 2 {
		t.Fatalf("errors = %v", errs)
	}
	var located bool
	for _, err := range errs {
		var e *Error
		if errors.As(err, &e) && e.Line == 13 && strings.HasSuffix(e.File, "x.yaml") {
			located = true
		}
	}
	if !located {
		t.Errorf("no error located at x.yaml:13: %v", errs)
	}
	var out bytes.Buffer
	if err := Check(&out, bad); !errors.Is(err, ErrCheckFailed) || !strings.Contains(out.String(), "x.yaml:13:17: domain") ||
		!strings.Contains(out.String(), "1 error(s)") {
		t.Errorf("Check = %v, output:\n%s", err, out.String())
	}
	out.Reset()
	if err := Check(&out, dir); err != nil || !strings.HasPrefix(out.String(), "ok: ") {
		t.Errorf("Check(valid) = %v %q", err, out.String())
	}
}

func TestListTable(t *testing.T) {
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := List(&out, s); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"ID ", "KL-UPD-001", "high(73)", "domain=s00.upd.kaspersky.com:443", "(+16 more)",
		"asn=200107[weak]", "2024-06-20", "Commerce BIS/OICTS Final Determination ICTS-2021-002"} {
		if !strings.Contains(text, want) {
			t.Errorf("List output lacks %q", want)
		}
	}
	if n := strings.Count(text, "\n"); n < s.Len()+2 {
		t.Errorf("List wrote %d lines for %d signatures", n, s.Len())
	}
}

func TestSetConcurrentReaders(t *testing.T) {
	s, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]Hit, 0, 8)
			for i := 0; i < 200; i++ {
				buf = s.MatchDomain("ksn-url-geo.kaspersky-labs.com", buf[:0])
				if len(buf) != 2 {
					t.Errorf("hits = %d", len(buf))
					return
				}
				_ = s.Signatures()
				_ = s.Vendors()
			}
		}()
	}
	wg.Wait()
}
