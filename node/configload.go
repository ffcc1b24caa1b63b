package node

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Settings come from, in order of precedence: the command line, the
// environment (EDGEPUSH_<NAME>), the config file (-config), the defaults.
// A Loader reads the second and third into a FlagSet that has parsed the
// first, and remembers where each setting came from, for error messages.

// EnvPrefix starts the name of every environment variable a Loader reads.
const EnvPrefix = "EDGEPUSH_"

// EnvVar is the environment variable of the flag named name: EnvPrefix and
// the name upper-cased, '-' as '_' ("max-conns": EDGEPUSH_MAX_CONNS).
func EnvVar(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// A Loader sets the flags of FS that the command line did not give from
// the environment (LoadEnv), then from a config file (LoadFile): a
// setting is taken from the first of the command line, the environment
// and the file that gives it.
type Loader struct {
	// FS holds the flags; it has parsed the command line.
	FS *flag.FlagSet
	// Commands names flags that are commands, not settings (-version,
	// -check-config): neither the environment nor a config file sets
	// them.
	Commands []string

	origin map[string]string // flag name → "file:line" or "EDGEPUSH_X"
}

// LoadConfigFile is (&Loader{FS: fs}).LoadFile(path).
func LoadConfigFile(fs *flag.FlagSet, path string) error {
	return (&Loader{FS: fs}).LoadFile(path)
}

// Origin says where the setting name was taken from: "FILE:LINE" for a
// config file, the variable's name for the environment, "" for the
// command line or the default.
func (l *Loader) Origin(name string) string { return l.origin[name] }

func (l *Loader) setOrigin(name, at string) {
	if l.origin == nil {
		l.origin = map[string]string{}
	}
	l.origin[name] = at
}

func (l *Loader) isCommand(name string) bool {
	for _, c := range l.Commands {
		if c == name {
			return true
		}
	}
	return false
}

// given reports the flags set so far: on the command line, or by an
// earlier source.
func (l *Loader) given() map[string]bool {
	set := map[string]bool{}
	l.FS.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

// LoadEnv sets every flag not given on the command line whose variable
// (EnvVar) is in environ ("NAME=value" strings, as os.Environ) and not
// empty. A repeatable setting (route, tls-cert, tls-key) takes one value
// per line of the variable. It returns a warning for each EDGEPUSH_
// variable that names no setting (a typo would otherwise go unnoticed),
// and an error, naming the variable, for each value refused.
func (l *Loader) LoadEnv(environ []string) (warnings []string, err error) {
	byVar := map[string]*flag.Flag{}
	l.FS.VisitAll(func(fl *flag.Flag) {
		if !l.isCommand(fl.Name) {
			byVar[EnvVar(fl.Name)] = fl
		}
	})
	given := l.given()
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		fl := byVar[name]
		if fl == nil {
			warnings = append(warnings, fmt.Sprintf("config: environment variable %s is not a setting, ignored%s", name, l.suggest(envName(name))))
			continue
		}
		if value == "" || given[fl.Name] {
			continue
		}
		values := []string{value}
		if repeatable(fl) {
			values = nonEmptyLines(value)
		}
		for _, v := range values {
			if err := l.FS.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s=%s: %w", name, v, err))
			}
		}
		l.setOrigin(fl.Name, name)
	}
	sort.Strings(warnings)
	return warnings, errors.Join(errs...)
}

// envName is the flag name an EDGEPUSH_ variable would stand for.
func envName(v string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v, EnvPrefix), "_", "-"))
}

func nonEmptyLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// LoadFile sets every setting the config file at path gives that was not
// set before (on the command line or from the environment).
//
// The file holds one setting per line, "name = value" or "name value",
// names as the flags' without the dash. A boolean setting alone on its
// line ("cache-off") means true. A value may be double- or single-quoted.
// A # starts a comment at the start of a line, and after a space or tab
// anywhere outside double quotes ("origin = http://a:8080 # the app"): a
// value with " #" in it is double-quoted. A setting given twice is an
// error, except the repeatable ones (route, tls-cert, tls-key), whose
// lines add up. Every error in the file is reported, each with its
// FILE:LINE.
func (l *Loader) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	given := l.given()
	seen := map[string]int{} // name → line
	var errs []error
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		name, value, hasValue := parseConfigLine(sc.Text())
		if name == "" {
			continue
		}
		at := fmt.Sprintf("%s:%d", path, line)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("config: %s: %s", at, fmt.Sprintf(format, args...)))
		}
		fl := l.FS.Lookup(name)
		switch {
		case name == "config":
			fail("config: a config file cannot name another")
			continue
		case fl == nil || l.isCommand(name):
			fail("unknown setting %q%s", name, l.suggest(name))
			continue
		}
		if first, ok := seen[name]; ok && !repeatable(fl) {
			fail("%s is given twice (first on line %d)", name, first)
			continue
		}
		seen[name] = line
		if !hasValue {
			if !isBoolFlag(fl) {
				fail("%s: missing value (write %s = value)", name, name)
				continue
			}
			value = "true"
		}
		if given[name] {
			continue // the command line or the environment wins
		}
		if err := l.FS.Set(name, value); err != nil {
			fail("%s: %v", name, err)
			continue
		}
		l.setOrigin(name, at)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("config: %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// parseConfigLine splits a config file line into name and value; name is
// "" for a blank or comment line, hasValue false for a name alone.
func parseConfigLine(s string) (name, value string, hasValue bool) {
	s = strings.TrimSpace(stripComment(s))
	if s == "" {
		return "", "", false
	}
	i := strings.IndexAny(s, "= \t")
	if i < 0 {
		return strings.TrimPrefix(s, "-"), "", false
	}
	name, value = s[:i], strings.TrimSpace(s[i:])
	if v, ok := strings.CutPrefix(value, "="); ok {
		value, hasValue = strings.TrimSpace(v), true // "name =" sets the empty value
	} else {
		hasValue = value != ""
	}
	return strings.TrimPrefix(name, "-"), unquote(value), hasValue
}

// stripComment cuts s at the # that starts a comment: the first one at
// the start of s or after a space or tab, outside double quotes.
func stripComment(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '#':
			if !quoted && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
				return s[:i]
			}
		}
	}
	return s
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// repeatable reports whether fl adds up its values (route, tls-cert,
// tls-key) rather than keeping the last one.
func repeatable(fl *flag.Flag) bool {
	switch fl.Value.(type) {
	case *StringList, *RouteList:
		return true
	}
	return false
}

// isBoolFlag reports whether fl is a boolean flag (given alone means
// true), as the flag package decides it.
func isBoolFlag(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// suggest returns " (did you mean -NAME?)" for the setting whose name is
// closest to name, when one is close (a typo), else "".
func (l *Loader) suggest(name string) string {
	return SuggestFlag(l.FS, name, l.Commands...)
}

// SuggestFlag returns " (did you mean -NAME?)" naming the flag of fs
// closest to name when one is within two edits of it, else "". Flags in
// except are not suggested.
func SuggestFlag(fs *flag.FlagSet, name string, except ...string) string {
	best, bestDist := "", 3
	fs.VisitAll(func(fl *flag.Flag) {
		for _, e := range except {
			if e == fl.Name {
				return
			}
		}
		if d := levenshtein.ComputeDistance(name, fl.Name); d < bestDist {
			best, bestDist = fl.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return " (did you mean -" + best + "?)"
}

// PrintFlags writes fs's flags to w as flag.PrintDefaults does, each with
// a placeholder that says what it takes (duration, size, n, or the word
// its usage back-quotes) and its default.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(fl *flag.Flag) {
		name, usage := flag.UnquoteUsage(fl)
		if name == "value" {
			switch fl.Value.(type) {
			case *durationValue:
				name = "duration"
			case *sizeValue[int], *sizeValue[int64]:
				name = "size"
			case *intValue:
				name = "n"
			}
		}
		line := "  -" + fl.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if d := fl.DefValue; d != "" && d != "0" && d != "0s" && d != "false" {
			if g, ok := fl.Value.(flag.Getter); ok {
				if _, ok := g.Get().(string); ok {
					d = strconv.Quote(d)
				}
			}
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}
