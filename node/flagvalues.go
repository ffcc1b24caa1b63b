package node

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// The flag.Values of Config's numeric settings: the same values as the
// flag package's own, with errors that say what is wanted.

// sizeValue is a size in bytes: plain bytes ("262144") or a number with
// a unit, case-insensitive, with or without a space: KiB, MiB, GiB, TiB
// (or Ki, Mi, …) are powers of 1024, and KB, MB, GB, TB (or K, M, G, T)
// powers of 1000, as SI and IEC define them ("256MiB" = 268435456,
// "256MB" = 256000000). It is parsed by go-humanize's ParseBytes.
type sizeValue[T int | int64] struct{ p *T }

func sizeFlag[T int | int64](p *T) *sizeValue[T] { return &sizeValue[T]{p} }

// parseSize parses a size in bytes as the flags take it, e.g. "65536",
// "64KiB", "10 MB" (KiB, MiB, GiB: powers of 1024; KB, MB, GB, and K, M,
// G: powers of 1000).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("must not be negative")
	}
	n, err := humanize.ParseBytes(s)
	if err != nil && strings.Contains(err.Error(), "too large") {
		return 0, errors.New("too large")
	}
	if err != nil {
		return 0, errors.New("want a size in bytes, e.g. 65536, 64KiB or 10MB (KiB, MiB, GiB: powers of 1024; KB, MB, GB: of 1000)")
	}
	if n > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(n), nil
}

// formatSize writes n the way parseSize reads it back: in the largest
// binary unit that divides it (KiB, MiB, GiB), else in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (v *sizeValue[T]) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return formatSize(int64(*v.p))
}

func (v *sizeValue[T]) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return errors.New("too large")
	}
	*v.p = T(n)
	return nil
}

// durationValue is a time.Duration; a number without a unit is refused
// with a message that says so.
type durationValue struct{ p *time.Duration }

func durationFlag(p *time.Duration) *durationValue { return &durationValue{p} }

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}

// parseDuration parses a duration as the flags take it: time.ParseDuration's
// syntax ("500ms", "5s", "2m", "1h30m"), with errors that say what is
// wanted ("missing unit, e.g. 5s" for a bare number other than 0).
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		return 0, fmt.Errorf("missing unit, e.g. %ss (units: ns, us, ms, s, m, h)", s)
	}
	return 0, errors.New("want a duration such as 500ms, 5s, 2m or 1h30m (units: ns, us, ms, s, m, h)")
}

// intValue is a whole number.
type intValue struct{ p *int }

func intFlag(p *int) *intValue { return &intValue{p} }

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return errors.New("out of range")
		}
		return errors.New("want a whole number")
	}
	*v.p = n
	return nil
}

// boolValue is a boolean; alone on the command line or a config file
// line, it is true.
type boolValue struct{ p *bool }

func boolFlag(p *bool) *boolValue { return &boolValue{p} }

// IsBoolFlag tells the flag package that the flag takes no value.
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *boolValue) String() string {
	if v == nil || v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want true or false (or 1 or 0)")
	}
	*v.p = b
	return nil
}
