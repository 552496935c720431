// Package layering holds only a test: the import rules between this
// module's packages that review asked for, checked on every go test.
package layering

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ironic-dpu/ironic-dpu-agent"

const noConfig = "a mechanism package owns its options; agent/daemon maps the configuration onto them"

// root is the module's directory (this file is internal/layering/).
func root(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// deps returns the module packages pkg depends on (pkg relative to the
// module), each with the import chain that reaches it.
func deps(t *testing.T, dir, pkg string) map[string][]string {
	t.Helper()
	seen := map[string][]string{}
	var walk func(rel string, chain []string)
	walk = func(rel string, chain []string) {
		p, err := build.Default.Import(module+"/"+rel, dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		for _, imp := range p.Imports {
			r, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if _, done := seen[r]; done {
				continue
			}
			c := append(slices.Clone(chain), r)
			seen[r] = c
			walk(r, c)
		}
	}
	walk(pkg, []string{pkg})
	return seen
}

// packages lists the module's non-test packages at or under rel.
func packages(t *testing.T, dir, rel string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, rel), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") {
			return filepath.SkipDir
		}
		if _, err := build.Default.ImportDir(path, 0); err != nil {
			if _, none := err.(*build.NoGoError); none {
				return nil
			}
			return err
		}
		r, _ := filepath.Rel(dir, path)
		out = append(out, filepath.ToSlash(r))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLayering(t *testing.T) {
	// rules: the package pkg (with tree, every package under it too) must not
	// depend, directly or through other packages of this module, on any
	// package listed.
	rules := []struct {
		pkg    string
		tree   bool
		banned []string
		why    string
	}{
		{"agent", false, []string{"storage/nvmeof"},
			"the agent knows no storage protocol: the storage reconciler parses Cinder's connection info, once"},
		{"network", true, []string{"config"}, noConfig},
		{"storage", true, []string{"config"}, noConfig},
		{"rpcapi", true, []string{"config"}, noConfig},
		{"drivers", true, []string{"config"}, noConfig},
	}
	dir := root(t)
	for _, rule := range rules {
		pkgs := []string{rule.pkg}
		if rule.tree {
			pkgs = packages(t, dir, rule.pkg)
		}
		for _, pkg := range pkgs {
			d := deps(t, dir, pkg)
			for _, b := range rule.banned {
				if chain, ok := d[b]; ok {
					t.Errorf("%s depends on %s (%s): %s", pkg, b, strings.Join(chain, " -> "), rule.why)
				}
			}
		}
	}
}
