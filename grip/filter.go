package grip

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Message filters a subscription may name (Grip-Channel "filter=",
// c:subscribe "filters"), as Pushpin defines them. Unknown names are
// ignored.
const (
	// FilterSkipSelf drops a message whose publish meta "sender" is the
	// connection's meta "user".
	FilterSkipSelf = "skip-self"
	// FilterSkipUsers drops a message whose publish meta "skip_users"
	// (a comma-separated list) names the connection's meta "user".
	FilterSkipUsers = "skip-users"
	// FilterRequireSub drops a message unless the connection is also
	// subscribed to the channel its publish meta "require_sub" names.
	FilterRequireSub = "require-sub"
	// FilterBuildID renders "%I" in content as the connection's current
	// ID (meta "id_format" with "%(channel)s" replaced by each channel's
	// last id; meta "id_encoding=hex" hex-encodes it) and "%%" as "%".
	// It applies to initial and next-link response bodies too.
	FilterBuildID = "build-id"
	// FilterVarSubst renders "%(name)s" in content as the connection's
	// meta value "name" and "%%" as "%".
	FilterVarSubst = "var-subst"
)

// FilterContext is what filters see of one delivery to one connection.
type FilterContext struct {
	// SubMeta is the connection's meta (Grip-Set-Meta, c:set-meta).
	SubMeta map[string]string
	// PubMeta is the publish item's meta.
	PubMeta map[string]string
	// LastIDs maps every channel the connection is subscribed to to the
	// last message id it has on that channel ("" when it has none),
	// including the message being filtered.
	LastIDs map[string]string
}

// errFilter wraps every filter failure.
var errFilter = errors.New("filter error")

// FilterMessage runs a subscription's filters, in order, over a message's
// content. drop reports that the message is not for this connection. A
// filter that fails (build-id without meta "id_format", an unknown
// directive after '%', a missing variable) returns an error; Pushpin
// then drops the message.
func FilterMessage(filters []string, fc *FilterContext, content []byte) (out []byte, drop bool, err error) {
	out = content
	for _, f := range filters {
		switch f {
		case FilterSkipSelf:
			user, sender := fc.SubMeta["user"], fc.PubMeta["sender"]
			drop = user != "" && user == sender
		case FilterSkipUsers:
			drop = skipsUser(fc.PubMeta["skip_users"], fc.SubMeta["user"])
		case FilterRequireSub:
			sub := fc.PubMeta["require_sub"]
			_, subscribed := fc.LastIDs[sub]
			drop = sub != "" && !subscribed
		case FilterBuildID:
			out, err = buildID(fc, out)
		case FilterVarSubst:
			out, err = varSubst(fc.SubMeta, out)
		}
		if drop || err != nil {
			return nil, drop, err
		}
	}
	return out, false, nil
}

// FilterResponse runs the filters that apply to response content
// (build-id) named by any of the subscriptions over a response body: the
// initial data of a hold or a next link's body.
func FilterResponse(filters []string, fc *FilterContext, body []byte) ([]byte, error) {
	if !slices.Contains(filters, FilterBuildID) {
		return body, nil
	}
	return buildID(fc, body)
}

// ContentFilters returns the filters among filters that change content
// (build-id, var-subst), in order. A publish format that lists
// content-filters is delivered only to subscriptions whose content
// filters are exactly those.
func ContentFilters(filters []string) []string {
	var out []string
	for _, f := range filters {
		if f == FilterBuildID || f == FilterVarSubst {
			out = append(out, f)
		}
	}
	return out
}

// ContentFiltersMatch reports whether a message whose format lists
// content-filters (nil: none listed, anything matches) may go to a
// subscription with filters.
func ContentFiltersMatch(formatFilters, filters []string) bool {
	return formatFilters == nil || slices.Equal(ContentFilters(filters), formatFilters)
}

func skipsUser(list, user string) bool {
	if user == "" {
		return false
	}
	for part := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(part) == user {
			return true
		}
	}
	return false
}

// buildID renders %I (the connection's id), %(ID)I (ID) and %% in
// content.
func buildID(fc *FilterContext, content []byte) ([]byte, error) {
	if bytes.IndexByte(content, '%') < 0 {
		return content, nil
	}
	format, ok := fc.SubMeta["id_format"]
	if !ok {
		return nil, fmt.Errorf("%w: no sub meta 'id_format'", errFilter)
	}
	hexID := false
	if enc, ok := fc.SubMeta["id_encoding"]; ok {
		if enc != "hex" {
			return nil, fmt.Errorf("%w: unsupported encoding: %s", errFilter, enc)
		}
		hexID = true
	}
	var id []byte
	haveID := false
	if len(fc.LastIDs) > 0 {
		var err error
		id, err = renderFormat([]byte(format), func(kind byte, arg []byte, hasArg bool) ([]byte, error) {
			return lookupVar(fc.LastIDs, kind, arg, hasArg)
		})
		if err != nil {
			return nil, fmt.Errorf("%w: failed to render ID: %w", errFilter, err)
		}
		haveID = true
	}
	out, err := renderFormat(content, func(kind byte, arg []byte, hasArg bool) ([]byte, error) {
		if kind != 'I' {
			return nil, fmt.Errorf("unknown directive '%c'", kind)
		}
		v := arg
		if !hasArg {
			if !haveID {
				return nil, errors.New("no ID specified and no default ID in context")
			}
			v = id
		}
		if hexID {
			return hex.AppendEncode(nil, v), nil
		}
		return v, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFilter, err)
	}
	return out, nil
}

// varSubst renders %(name)s as meta["name"] and %% in content.
func varSubst(meta map[string]string, content []byte) ([]byte, error) {
	if bytes.IndexByte(content, '%') < 0 {
		return content, nil
	}
	out, err := renderFormat(content, func(kind byte, arg []byte, hasArg bool) ([]byte, error) {
		return lookupVar(meta, kind, arg, hasArg)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFilter, err)
	}
	return out, nil
}

// lookupVar answers a %(name)s directive from vars; an empty value counts
// as missing, as an unset one does in Pushpin.
func lookupVar(vars map[string]string, kind byte, arg []byte, hasArg bool) ([]byte, error) {
	if kind != 's' {
		return nil, fmt.Errorf("unknown directive '%c'", kind)
	}
	if !hasArg {
		return nil, errors.New("directive 's' requires argument")
	}
	v := vars[string(arg)]
	if v == "" {
		return nil, fmt.Errorf("no such variable '%s'", arg)
	}
	return []byte(v), nil
}

// renderFormat expands Pushpin's format directives in format: "%%" is a
// '%', "%X" (X a letter) and "%(arg)X" are given to handle (in arg, a
// backslash escapes the next byte, so "\)" is a ')'). Anything else after
// a '%' is an error, as is a format ending inside a directive.
func renderFormat(format []byte, handle func(kind byte, arg []byte, hasArg bool) ([]byte, error)) ([]byte, error) {
	out := make([]byte, 0, len(format))
	for n := 0; n < len(format); n++ {
		c := format[n]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if n+1 >= len(format) {
			return nil, fmt.Errorf("expected directive after '%%' at position %d", n)
		}
		n++
		switch c = format[n]; {
		case c == '%':
			out = append(out, '%')
		case c == '(':
			arg, end, err := scanArg(format, n)
			if err != nil {
				return nil, err
			}
			n = end + 1
			v, err := handle(format[n], arg, true)
			if err != nil {
				return nil, fmt.Errorf("%w at position %d", err, n)
			}
			out = append(out, v...)
		case isAlpha(c):
			v, err := handle(c, nil, false)
			if err != nil {
				return nil, fmt.Errorf("%w at position %d", err, n)
			}
			out = append(out, v...)
		default:
			return nil, fmt.Errorf("unknown directive '%c' at position %d", c, n)
		}
	}
	return out, nil
}

// scanArg reads "(arg)" starting at format[open] == '(' and returns arg
// and the index of the ')', which is not the last byte.
func scanArg(format []byte, open int) (arg []byte, end int, err error) {
	arg = []byte{}
	for n := open + 1; n < len(format); n++ {
		switch c := format[n]; c {
		case '\\':
			if n+1 >= len(format) {
				return nil, 0, fmt.Errorf("expected character after '\\' at position %d", n)
			}
			n++
			arg = append(arg, format[n])
		case ')':
			if n+1 >= len(format) {
				return nil, 0, fmt.Errorf("expected directive after ')' at position %d", n)
			}
			return arg, n, nil
		default:
			arg = append(arg, c)
		}
	}
	return nil, 0, fmt.Errorf("unterminated field starting at position %d", open)
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
