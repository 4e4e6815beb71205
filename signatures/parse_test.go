package signatures

import (
	"errors"
	"strings"
	"testing"
)

// validSig is a minimal valid file; cases below break one thing at a known
// line.
const validHead = `format: phonehome-signatures/v1
vendor:
  name: Acme
signatures:
  - id: A-1
    product: p
    purpose: update
    severity: high
    confidence: high
    description: d
    references: [https://acme.example/]
    match:
      - domain: a.acme.example
`

func TestValidatorLineNumbers(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings expected among the errors, each "file:line..." prefixed
	}{
		{"valid", validHead, nil},
		{"broken yaml", "format: phonehome-signatures/v1\nvendor:\n  name: a: b\nsignatures: []\n",
			[]string{"t.yaml:3: YAML syntax: mapping values are not allowed"}},
		{"tab indentation", "format: x\n\tvendor: y\n", []string{"t.yaml:2: YAML syntax"}},
		{"unknown top key", validHead + "extra: 1\n", []string{`t.yaml:14:1: file: unknown key "extra"`}},
		{"unknown signature key", strings.Replace(validHead, "    product: p\n", "    product: p\n    sevrity: low\n", 1),
			[]string{`t.yaml:7:5: signature: unknown key "sevrity"`}},
		{"unknown matcher key", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - domain: a.acme.example\n        port: [1]\n", 1), []string{`t.yaml:14:9: matcher: unknown key "port"`}},
		{"bad regex", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - domain: a.acme.example\n      - user_agent: 'a(b'\n", 1), []string{"t.yaml:14:21: user_agent: bad RE2 regex"}},
		{"perl-only regex", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - http_path_regex: '^/(?=x)'\n", 1), []string{"t.yaml:13:26: http_path_regex: bad RE2 regex"}},
		{"bad cidr", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - ip: [192.0.2.0/24, 192.0.2.1/24, 300.1.1.0/24]\n", 1),
			[]string{"t.yaml:13:28: ip \"192.0.2.1/24\": host bits set; did you mean 192.0.2.0/24", "t.yaml:13:42: ip \"300.1.1.0/24\": bad CIDR"}},
		{"duplicate id", validHead + strings.Replace(validHead[strings.Index(validHead, "  - id"):], "", "", 1),
			[]string{`t.yaml:14:5: duplicate signature id "A-1" (first at line 5)`}},
		{"missing references", strings.Replace(validHead, "    references: [https://acme.example/]\n", "", 1),
			[]string{`t.yaml:5:5: signature: missing required key "references" in A-1`}},
		{"empty references", strings.Replace(validHead, "[https://acme.example/]", "[]", 1),
			[]string{"t.yaml:11:17: references must list at least one source"}},
		{"bad reference", strings.Replace(validHead, "[https://acme.example/]", "[see the wiki]", 1),
			[]string{`t.yaml:11:18: references: "see the wiki" is neither`}},
		{"bad enum", strings.Replace(validHead, "purpose: update", "purpose: spying", 1),
			[]string{`t.yaml:7:14: purpose "spying" is not one of`}},
		{"missing format", strings.TrimPrefix(validHead, "format: phonehome-signatures/v1\n"),
			[]string{`t.yaml:1:1: missing required key "format"`}},
		{"wrong format", strings.Replace(validHead, "/v1", "/v9", 1), []string{`t.yaml:1:9: unsupported format`}},
		{"public suffix", strings.Replace(validHead, "domain: a.acme.example", "domain_suffix: co.uk", 1),
			[]string{`t.yaml:13:24: domain_suffix "co.uk" is a public suffix`}},
		{"bad domain", strings.Replace(validHead, "domain: a.acme.example", "domain: a..b", 1),
			[]string{`t.yaml:13:17: domain "a..b": empty or over-long label`}},
		{"two kinds", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - domain: a.acme.example\n        asn: 1\n", 1), []string{"t.yaml:14:9: matcher has two kinds"}},
		{"bad ports", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - domain: a.acme.example\n        ports: [0, 90-80, 65536]\n", 1),
			[]string{`t.yaml:14:17: port "0"`, `t.yaml:14:20: port "90-80"`, `t.yaml:14:27: port "65536"`}},
		{"weak high", strings.Replace(validHead, "    severity: high\n", "    severity: high\n    weak: true\n", 1),
			[]string{"t.yaml:8:15: weak signature A-1 must have severity low"}},
		{"bad ja3 ja4 asn ctype", strings.Replace(validHead, "      - domain: a.acme.example\n",
			"      - ja3: abc\n      - ja4: nope\n      - asn: AS0\n      - http_content_type: text/html; charset=utf-8\n", 1),
			[]string{"t.yaml:13:14: ja3", "t.yaml:14:14: ja4", "t.yaml:15:14: asn", "t.yaml:16:28: http_content_type"}},
		{"duplicate matcher", strings.Replace(validHead, "domain: a.acme.example", "domain: [a.acme.example, A.acme.example.]", 1),
			[]string{`t.yaml:13: duplicate domain matcher "a.acme.example" (first at line 13)`}},
		{"duplicate key", strings.Replace(validHead, "    product: p\n", "    product: p\n    product: q\n", 1),
			[]string{`t.yaml:7:5: signature: duplicate key "product"`}},
		{"two documents", validHead + "---\n" + validHead, []string{"t.yaml:14:1: more than one YAML document"}},
		{"bad policy date", strings.Replace(validHead, "  name: Acme\n",
			"  name: Acme\n  policies:\n    - {jurisdiction: US, instrument: X, date: 2024-13-01, references: [idx:1]}\n", 1),
			[]string{`t.yaml:5:47: policy.date "2024-13-01" is not`}},
		{"alias", strings.Replace(validHead, "    product: p\n", "    product: &x p\n", 1) + "  - id: A-2\n    product: *x\n",
			[]string{"t.yaml:15:14: signature: YAML aliases are not supported"}},
		{"empty", "", []string{"t.yaml: empty file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, errs := ParseFile("t.yaml", []byte(c.yaml))
			if c.want == nil {
				if errs != nil || f == nil {
					t.Fatalf("valid file rejected: %v", errs)
				}
				return
			}
			if f != nil {
				t.Fatalf("invalid file accepted")
			}
			var msgs []string
			for _, e := range errs {
				var le *Error
				if !errors.As(e, &le) {
					t.Errorf("error %v is not an *Error", e)
				}
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("want error containing %q, got:\n%s", w, all)
				}
			}
		})
	}
}
