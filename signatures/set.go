package signatures

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed defaults/*.yaml
var defaultFS embed.FS

// Set is a validated, merged and compiled signature set. It is immutable once
// built and safe for concurrent readers; a reload builds a new Set and the
// caller swaps the pointer, keeping the old Set when the build fails.
type Set struct {
	sigs    []*Signature
	byID    map[string]*Signature
	vendors []*Vendor
	idx     index
}

// Signatures returns the set's signatures in load order. The slice is the
// caller's; the Signatures are shared and must not be modified.
func (s *Set) Signatures() []*Signature { return append([]*Signature(nil), s.sigs...) }

// Signature returns the signature with the given id, or nil.
func (s *Set) Signature(id string) *Signature { return s.byID[id] }

// Len returns the number of signatures.
func (s *Set) Len() int { return len(s.sigs) }

// Vendors returns the vendors (with their policies) sorted by name. The
// Vendors are shared and must not be modified.
func (s *Set) Vendors() []*Vendor { return append([]*Vendor(nil), s.vendors...) }

// Vendor returns the vendor of the given name (case-insensitive), or nil.
func (s *Set) Vendor(name string) *Vendor {
	for _, v := range s.vendors {
		if strings.EqualFold(v.Name, name) {
			return v
		}
	}
	return nil
}

// LoadDefault parses the embedded default set.
func LoadDefault() (*Set, error) { return Load(true) }

// defaultFiles parses the embedded defaults/*.yaml.
func defaultFiles() ([]*File, error) {
	entries, err := fs.ReadDir(defaultFS, "defaults")
	if err != nil {
		return nil, fmt.Errorf("signatures: read embedded defaults: %w", err)
	}
	var files []*File
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !isYAML(e.Name()) {
			continue
		}
		name := path.Join("defaults", e.Name())
		data, err := defaultFS.ReadFile(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("signatures: read embedded %s: %w", name, err))
			continue
		}
		f, ferrs := ParseFile("embedded:"+name, data)
		errs = append(errs, ferrs...)
		if f != nil {
			files = append(files, f)
		}
	}
	errs = append(errs, duplicateIDs(files)...)
	return files, errors.Join(errs...)
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// LoadDir parses and validates every *.yaml / *.yml file directly in dir, in
// name order. Signature ids must be unique across the directory. The error
// joins every *Error found (file:line: message).
func LoadDir(dir string) ([]*File, error) {
	paths, err := yamlFiles(dir)
	if err != nil {
		return nil, err
	}
	return parsePaths(paths)
}

func yamlFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("signatures: read dir: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if !e.IsDir() && isYAML(e.Name()) {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(paths)
	return paths, nil
}

func parsePaths(paths []string) ([]*File, error) {
	var files []*File
	var errs []error
	for _, p := range paths {
		f, ferrs := readFile(p)
		errs = append(errs, ferrs...)
		if f != nil {
			files = append(files, f)
		}
	}
	errs = append(errs, duplicateIDs(files)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}

func readFile(p string) (*File, []error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, []error{&Error{File: p, Msg: err.Error()}}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, []error{&Error{File: p, Msg: err.Error()}}
	}
	if st.Size() > MaxFileSize {
		return nil, []error{&Error{File: p, Msg: fmt.Sprintf("file is %d bytes, larger than the %d-byte limit", st.Size(), MaxFileSize)}}
	}
	data := make([]byte, st.Size())
	if _, err := fh.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, []error{&Error{File: p, Msg: err.Error()}}
	}
	return ParseFile(p, data)
}

// duplicateIDs reports ids defined by more than one file of one layer.
func duplicateIDs(files []*File) []error {
	first := map[string]*Signature{}
	var errs []error
	for _, f := range files {
		for _, s := range f.Signatures {
			if prev, dup := first[s.ID]; dup {
				errs = append(errs, &Error{File: s.File, Line: s.Line,
					Msg: fmt.Sprintf("duplicate signature id %q (also %s:%d)", s.ID, prev.File, prev.Line)})
				continue
			}
			first[s.ID] = s
		}
	}
	return errs
}

// CheckFiles validates files without building a Set. A path may be a file or
// a directory (its *.yaml/*.yml files). The files are checked as one layer:
// ids must be unique across them. Every error is an *Error (file:line: msg)
// except I/O failures on a directory.
func CheckFiles(paths ...string) []error {
	var all []string
	var errs []error
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: err.Error()})
			continue
		}
		if st.IsDir() {
			dirPaths, err := yamlFiles(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			all = append(all, dirPaths...)
			continue
		}
		all = append(all, p)
	}
	var files []*File
	for _, p := range all {
		f, ferrs := readFile(p)
		errs = append(errs, ferrs...)
		if f != nil {
			files = append(files, f)
		}
	}
	return append(errs, duplicateIDs(files)...)
}

// Load builds a Set from the embedded defaults (when defaults is true)
// followed by each directory in order. Each directory is one layer, merged
// over the layers before it:
//   - a file with `mode: replace` first discards every policy and signature
//     loaded before for the same vendor (vendor names compare
//     case-insensitively), then adds its own;
//   - a file with `mode: merge` (the default) adds its signatures, a signature
//     whose id was loaded before replacing it in place (same vendor only),
//     adds its policies (one with the same jurisdiction, instrument and date
//     replaces the earlier one), and overrides non-empty vendor metadata;
//   - `disable: [id...]` removes loaded signatures; an unknown id is an error.
//
// Any error fails the whole load; the caller keeps its previous Set.
func Load(defaults bool, dirs ...string) (*Set, error) {
	var layers [][]*File
	if defaults {
		files, err := defaultFiles()
		if err != nil {
			return nil, fmt.Errorf("signatures: embedded defaults: %w", err)
		}
		layers = append(layers, files)
	}
	for _, d := range dirs {
		files, err := LoadDir(d)
		if err != nil {
			return nil, fmt.Errorf("signatures: %s: %w", d, err)
		}
		layers = append(layers, files)
	}
	return Build(layers...)
}

// Build merges layers of parsed files (see Load) and compiles the matcher.
func Build(layers ...[]*File) (*Set, error) {
	m := merger{byID: map[string]int{}, vendors: map[string]*Vendor{}}
	var errs []error
	for _, layer := range layers {
		errs = append(errs, duplicateIDs(layer)...)
		for _, f := range layer {
			errs = append(errs, m.add(f)...)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Set{byID: make(map[string]*Signature, len(m.sigs))}
	for _, sig := range m.sigs {
		if sig != nil {
			s.sigs = append(s.sigs, sig)
			s.byID[sig.ID] = sig
		}
	}
	for _, v := range m.vendors {
		s.vendors = append(s.vendors, v)
	}
	sort.Slice(s.vendors, func(i, j int) bool { return s.vendors[i].Name < s.vendors[j].Name })
	s.idx.build(s.sigs)
	return s, nil
}

// merger accumulates layers. Removed signatures leave nil holes so indexes
// in byID stay valid; Build drops the holes.
type merger struct {
	sigs    []*Signature
	byID    map[string]int
	vendors map[string]*Vendor // by lower-cased name
}

func (m *merger) add(f *File) []error {
	var errs []error
	key := strings.ToLower(f.Vendor.Name)
	v := m.vendors[key]
	if v == nil || f.Mode == ModeReplace {
		if v != nil {
			for id, i := range m.byID {
				if strings.EqualFold(m.sigs[i].Vendor, f.Vendor.Name) {
					m.sigs[i] = nil
					delete(m.byID, id)
				}
			}
		}
		nv := f.Vendor
		nv.Policies = append([]Policy(nil), f.Vendor.Policies...)
		m.vendors[key] = &nv
	} else {
		mergeVendor(v, &f.Vendor)
	}
	for _, id := range f.Disable {
		i, ok := m.byID[id]
		if !ok {
			errs = append(errs, &Error{File: f.Path, Msg: fmt.Sprintf("disable: no loaded signature has id %q", id)})
			continue
		}
		m.sigs[i] = nil
		delete(m.byID, id)
	}
	for _, s := range f.Signatures {
		if i, ok := m.byID[s.ID]; ok {
			if prev := m.sigs[i]; !strings.EqualFold(prev.Vendor, s.Vendor) {
				errs = append(errs, &Error{File: s.File, Line: s.Line,
					Msg: fmt.Sprintf("signature id %q already belongs to vendor %s (%s:%d)", s.ID, prev.Vendor, prev.File, prev.Line)})
				continue
			}
			m.sigs[i] = s
			continue
		}
		m.byID[s.ID] = len(m.sigs)
		m.sigs = append(m.sigs, s)
	}
	return errs
}

func mergeVendor(dst, src *Vendor) {
	if len(src.LegalNames) > 0 {
		dst.LegalNames = src.LegalNames
	}
	if src.Country != "" {
		dst.Country = src.Country
	}
	if src.Notes != "" {
		dst.Notes = src.Notes
	}
	for _, p := range src.Policies {
		replaced := false
		for i := range dst.Policies {
			q := &dst.Policies[i]
			if q.Jurisdiction == p.Jurisdiction && q.Instrument == p.Instrument && q.Date == p.Date {
				*q, replaced = p, true
			}
		}
		if !replaced {
			dst.Policies = append(dst.Policies, p)
		}
	}
}
