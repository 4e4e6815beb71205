package signatures

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// This file checks schema.json against the Go validator without a JSON Schema
// module: a small validator for the keywords schema.json uses (and a test that
// it uses no others), the defaults validated against it, broken files
// rejected by both, and the schema's key lists equal to the parser's.

// schemaKeywords are the JSON Schema keywords jsonSchemaValidate implements;
// annotations ($schema, $id, title, description) are ignored.
var schemaKeywords = map[string]bool{"type": true, "enum": true, "const": true, "pattern": true, "minLength": true,
	"minItems": true, "items": true, "properties": true, "required": true, "additionalProperties": true, "oneOf": true,
	"anyOf": true, "$ref": true, "minimum": true, "maximum": true, "$defs": true,
	"$schema": true, "$id": true, "title": true, "description": true}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema.json: %v", err)
	}
	return s
}

// yamlValue converts a YAML node to JSON-model values by its resolved tag.
func yamlValue(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return yamlValue(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = yamlValue(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			out = append(out, yamlValue(c))
		}
		return out
	}
	switch n.Tag {
	case "!!int":
		v, _ := strconv.ParseFloat(n.Value, 64)
		return v
	case "!!float":
		v, _ := strconv.ParseFloat(n.Value, 64)
		return v
	case "!!bool":
		return n.Value == "true"
	case "!!null":
		return nil
	}
	return n.Value
}

type schemaValidator struct{ root map[string]any }

func (v schemaValidator) validate(s map[string]any, x any, at string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := s["$ref"].(string); ok {
		def := v.root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")]
		errs = append(errs, v.validate(def.(map[string]any), x, at)...)
	}
	if t, ok := s["type"].(string); ok && !hasType(x, t) {
		fail("want %s, got %T", t, x)
		return errs
	}
	if c, ok := s["const"]; ok && x != c {
		fail("want %v", c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.Contains(e, x) {
		fail("%v not in enum", x)
	}
	if str, ok := x.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if m, ok := s["minLength"].(float64); ok && float64(len(str)) < m {
			fail("shorter than %v", m)
		}
	}
	if num, ok := x.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && num < m {
			fail("%v < %v", num, m)
		}
		if m, ok := s["maximum"].(float64); ok && num > m {
			fail("%v > %v", num, m)
		}
	}
	if arr, ok := x.([]any); ok {
		if m, ok := s["minItems"].(float64); ok && float64(len(arr)) < m {
			fail("fewer than %v items", m)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range arr {
				errs = append(errs, v.validate(items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	if obj, ok := x.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := obj[r]; !ok {
				fail("missing %q", r)
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, v.validate(ps, obj[k], at+"."+k)...)
			} else if ap, ok := s["additionalProperties"].(bool); ok && !ap {
				fail("unknown key %q", k)
			}
		}
	}
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(v.validate(a.(map[string]any), x, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("matches %d of oneOf, want exactly 1", n)
		}
	}
	if alts, ok := s["anyOf"].([]any); ok {
		ok := false
		for _, a := range alts {
			if len(v.validate(a.(map[string]any), x, at)) == 0 {
				ok = true
			}
		}
		if !ok {
			fail("matches none of anyOf")
		}
	}
	return errs
}

func hasType(x any, t string) bool {
	switch t {
	case "object":
		_, ok := x.(map[string]any)
		return ok
	case "array":
		_, ok := x.([]any)
		return ok
	case "string":
		_, ok := x.(string)
		return ok
	case "boolean":
		_, ok := x.(bool)
		return ok
	case "integer":
		f, ok := x.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := x.(float64)
		return ok
	case "null":
		return x == nil
	}
	return false
}

func asStrings(x any) []string {
	var out []string
	arr, _ := x.([]any)
	for _, a := range arr {
		out = append(out, a.(string))
	}
	return out
}

// walkSchema calls fn on every subschema.
func walkSchema(s map[string]any, fn func(map[string]any)) {
	fn(s)
	for k, v := range s {
		switch k {
		case "properties", "$defs":
			for _, sub := range v.(map[string]any) {
				walkSchema(sub.(map[string]any), fn)
			}
		case "items":
			walkSchema(v.(map[string]any), fn)
		case "oneOf", "anyOf":
			for _, sub := range v.([]any) {
				walkSchema(sub.(map[string]any), fn)
			}
		}
	}
}

func schemaErrors(t *testing.T, v schemaValidator, data []byte) []string {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return v.validate(v.root, yamlValue(&n), "$")
}

func TestSchemaUsesOnlyImplementedKeywords(t *testing.T) {
	walkSchema(loadSchema(t), func(s map[string]any) {
		for k := range s {
			if !schemaKeywords[k] {
				t.Errorf("schema.json uses keyword %q, which the test validator does not implement", k)
			}
		}
		if p, ok := s["pattern"].(string); ok {
			if _, err := regexp.Compile(p); err != nil {
				t.Errorf("pattern %q: %v", p, err)
			}
		}
	})
}

func TestSchemaValidatesDefaults(t *testing.T) {
	v := schemaValidator{loadSchema(t)}
	entries, err := defaultFS.ReadDir("defaults")
	if err != nil || len(entries) == 0 {
		t.Fatalf("defaults: %v", err)
	}
	for _, e := range entries {
		data, err := defaultFS.ReadFile(path.Join("defaults", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range schemaErrors(t, v, data) {
			t.Errorf("%s: %s", e.Name(), msg)
		}
	}
	for name, doc := range map[string]string{"allKinds": allKinds, "merge": kasperskyMerge, "valid": validHead} {
		for _, msg := range schemaErrors(t, v, []byte(doc)) {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

// TestSchemaAgreesWithGoValidator feeds files both validators must reject.
// (Semantic checks only the Go validator makes—RE2 syntax, CIDR host bits,
// public suffixes, duplicates, weak/high—are listed in schema.json's
// description.)
func TestSchemaAgreesWithGoValidator(t *testing.T) {
	v := schemaValidator{loadSchema(t)}
	matcher := "      - domain: a.acme.example\n"
	broken := map[string]string{
		"unknown top key":       validHead + "extra: 1\n",
		"unknown signature key": strings.Replace(validHead, "    product: p\n", "    product: p\n    sevrity: low\n", 1),
		"unknown matcher key":   strings.Replace(validHead, matcher, matcher+"        port: [1]\n", 1),
		"two kinds":             strings.Replace(validHead, matcher, matcher+"        asn: 1\n", 1),
		"no kind":               strings.Replace(validHead, matcher, "      - weak: true\n", 1),
		"missing references":    strings.Replace(validHead, "    references: [https://acme.example/]\n", "", 1),
		"empty references":      strings.Replace(validHead, "[https://acme.example/]", "[]", 1),
		"bad reference":         strings.Replace(validHead, "[https://acme.example/]", "[wiki page]", 1),
		"bad purpose":           strings.Replace(validHead, "purpose: update", "purpose: spying", 1),
		"bad severity":          strings.Replace(validHead, "severity: high", "severity: info", 1),
		"wrong format":          strings.Replace(validHead, "/v1", "/v2", 1),
		"missing vendor":        strings.Replace(validHead, "vendor:\n  name: Acme\n", "", 1),
		"bad ja3":               strings.Replace(validHead, matcher, "      - ja3: xyz\n", 1),
		"bad ja4":               strings.Replace(validHead, matcher, "      - ja4: t13\n", 1),
		"bad id":                strings.Replace(validHead, "id: A-1", "id: -bad id", 1),
		"empty match":           strings.Replace(validHead, "    match:\n"+matcher, "    match: []\n", 1),
		"bad port":              strings.Replace(validHead, matcher, matcher+"        ports: [70000]\n", 1),
		"bad policy date": strings.Replace(validHead, "  name: Acme\n",
			"  name: Acme\n  policies:\n    - {jurisdiction: US, instrument: X, date: 24-1-1, references: [idx:1]}\n", 1),
		"content type params": strings.Replace(validHead, matcher, "      - http_content_type: text/html; a=b\n", 1),
	}
	for name, doc := range broken {
		if _, errs := ParseFile("t.yaml", []byte(doc)); errs == nil {
			t.Errorf("%s: Go validator accepted", name)
		}
		if errs := schemaErrors(t, v, []byte(doc)); len(errs) == 0 {
			t.Errorf("%s: schema accepted", name)
		}
	}
}

func TestSchemaKeysMatchParser(t *testing.T) {
	root := loadSchema(t)
	defs := root["$defs"].(map[string]any)
	keys := func(s map[string]any) []string {
		var out []string
		for k := range s["properties"].(map[string]any) {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	sorted := func(in ...string) []string { out := slices.Clone(in); sort.Strings(out); return out }
	if got, want := keys(defs["signature"].(map[string]any)), sorted(signatureKeys...); !slices.Equal(got, want) {
		t.Errorf("signature keys: schema %v, parser %v", got, want)
	}
	if got, want := keys(defs["matcher"].(map[string]any)), sorted(append(slices.Clone(kindKeys[1:]), "ports", "weak")...); !slices.Equal(got, want) {
		t.Errorf("matcher keys: schema %v, parser %v", got, want)
	}
	if got, want := keys(root), sorted("format", "mode", "vendor", "disable", "signatures"); !slices.Equal(got, want) {
		t.Errorf("top-level keys: schema %v, parser %v", got, want)
	}
	enum := func(def string) []string {
		return asStrings(defs["signature"].(map[string]any)["properties"].(map[string]any)[def].(map[string]any)["enum"])
	}
	if !slices.Equal(enum("purpose"), purposeNames[1:]) || !slices.Equal(enum("severity"), severityNames[1:]) ||
		!slices.Equal(enum("confidence"), confidenceNames[1:]) {
		t.Error("schema enums differ from the parser's")
	}
	if p := defs["ja4"].(map[string]any)["pattern"]; p != ja4Pattern.String() {
		t.Errorf("ja4 pattern: schema %v, parser %s", p, ja4Pattern)
	}
	if p := defs["date"].(map[string]any)["pattern"]; p != datePattern.String() {
		t.Errorf("date pattern: schema %v, parser %s", p, datePattern)
	}
	if p := defs["id"].(map[string]any)["pattern"]; p != idPattern.String() {
		t.Errorf("id pattern: schema %v, parser %s", p, idPattern)
	}
}
