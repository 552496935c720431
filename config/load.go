package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/ini.v1"
)

// optKey is one place an option can be set: [group] name.
type optKey struct{ group, name string }

func (k optKey) String() string { return "[" + k.group + "] " + k.name }

// parseDeprecated reads a deprecated:"old,GROUP/old2" tag. A bare name is in
// the option's own group, like oslo.config's deprecated_name without a
// deprecated_group.
func parseDeprecated(group, tag string) []optKey {
	var out []optKey
	for _, d := range strings.Split(tag, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if g, n, ok := strings.Cut(d, "/"); ok {
			out = append(out, optKey{g, n})
		} else {
			out = append(out, optKey{group, d})
		}
	}
	return out
}

// NoticeKind says how serious a Notice is.
type NoticeKind int

const (
	// NoticeUnknown is a section or key the agent does not read: most often
	// a typo, or an option of another service. `check` fails on it.
	NoticeUnknown NoticeKind = iota + 1
	// NoticeDeprecated is an old option name that is still honoured, or one
	// that is ignored because the new name is set too.
	NoticeDeprecated
)

// Notice is something in the config files the operator should fix although
// the agent runs with it.
type Notice struct {
	Kind    NoticeKind
	File    string
	Section string
	// Key is empty when the whole section is unknown.
	Key string
	Msg string
}

func (n Notice) String() string { return n.File + ": " + n.Msg }

// source is one parsed file: sections (names normalized as oslo.config
// does) of key -> value, and the keys in file order for reporting.
type source struct {
	path     string
	sections map[string]map[string]string
	order    []optKey
}

// normalizeGroup is oslo.config's rule: group names are case-insensitive,
// except that only the exact "DEFAULT" is the default group.
func normalizeGroup(name string) string {
	if name == ini.DefaultSection {
		return name
	}
	return strings.ToLower(name)
}

func parseSource(path string) (*source, error) {
	f, err := ini.LoadSources(ini.LoadOptions{IgnoreInlineComment: true, Insensitive: false}, path)
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	s := &source{path: path, sections: map[string]map[string]string{}}
	for _, sec := range f.Sections() {
		g := normalizeGroup(sec.Name())
		if s.sections[g] == nil {
			s.sections[g] = map[string]string{}
			if g != ini.DefaultSection || len(sec.Keys()) > 0 {
				s.order = append(s.order, optKey{g, ""})
			}
		}
		for _, k := range sec.Keys() {
			if _, seen := s.sections[g][k.Name()]; !seen {
				s.order = append(s.order, optKey{g, k.Name()})
			}
			s.sections[g][k.Name()] = strings.TrimSpace(k.String())
		}
	}
	return s, nil
}

func (s *source) get(k optKey) (string, bool) {
	v, ok := s.sections[k.group][k.name]
	return v, ok
}

// Load reads files then every *.conf in dirs, and drops the notices: for
// callers that report none (tests, tools). The agent uses LoadWithNotices.
func Load(files []string, dirs []string) (*Config, error) {
	c, _, err := LoadWithNotices(files, dirs)
	return c, err
}

// LoadWithNotices reads files (in order, later wins) then every *.conf in
// dirs (name order), resolving each option as oslo.config does: the last
// file that sets the option under any of its names wins, and within one file
// the current name wins over a deprecated one. It returns, besides the
// config, every unknown section or key and every deprecated name used.
func LoadWithNotices(files []string, dirs []string) (*Config, []Notice, error) {
	var paths []string
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, nil, fmt.Errorf("config file %s: %w", f, err)
		}
		paths = append(paths, f)
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("config dir %s: not a directory", d)
		}
		matches, err := filepath.Glob(filepath.Join(d, "*.conf"))
		if err != nil {
			return nil, nil, err
		}
		sort.Strings(matches)
		paths = append(paths, matches...)
	}
	var srcs []*source
	for _, p := range paths {
		s, err := parseSource(p)
		if err != nil {
			return nil, nil, err
		}
		srcs = append(srcs, s)
	}
	c := Defaults()
	var notices []Notice
	known := map[optKey]bool{}
	groups := map[string]bool{}
	err := walk(c, func(fl field) error {
		cur := optKey{fl.group, fl.name}
		names := append([]optKey{cur}, fl.deprecated...)
		for _, n := range names {
			known[n] = true
			groups[n.group] = true
		}
		for i := len(srcs) - 1; i >= 0; i-- {
			s := srcs[i]
			for j, n := range names {
				v, ok := s.get(n)
				if !ok {
					continue
				}
				if err := fl.set(v); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				if j > 0 {
					notices = append(notices, Notice{Kind: NoticeDeprecated, File: s.path, Section: n.group, Key: n.name,
						Msg: fmt.Sprintf("%s is deprecated, use %s", n, cur)})
				}
				// oslo reads no further; say so about older names it skips here
				for _, old := range names[j+1:] {
					if _, also := s.get(old); also {
						notices = append(notices, Notice{Kind: NoticeDeprecated, File: s.path, Section: old.group, Key: old.name,
							Msg: fmt.Sprintf("%s is deprecated and ignored: %s is set", old, n)})
					}
				}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, s := range srcs {
		for _, k := range s.order {
			switch {
			case k.name == "" && !groups[k.group]:
				notices = append(notices, Notice{Kind: NoticeUnknown, File: s.path, Section: k.group,
					Msg: fmt.Sprintf("unknown section [%s]: the agent reads none of it", k.group)})
			case k.name != "" && groups[k.group] && !known[k]:
				notices = append(notices, Notice{Kind: NoticeUnknown, File: s.path, Section: k.group, Key: k.name,
					Msg: fmt.Sprintf("unknown option %s: ignored", k)})
			}
		}
	}
	return c, notices, nil
}
