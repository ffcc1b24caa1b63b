package grip

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

func parseExposeHeaders(in *Instruct, headers []Header) error {
	elems, ok := listElements(nil, headers, "Grip-Expose-Headers", false)
	if !ok {
		return parseErr("Grip-Expose-Headers", "unterminated quoted string")
	}
	in.ExposeHeaders = elems
	return nil
}

// parseKeepAliveHeader parses "DATA; format=F; timeout=N; mode=M" from the
// first Grip-Keep-Alive header. DATA runs to the first ';' and is not split
// on commas.
func parseKeepAliveHeader(in *Instruct, headers []Header) error {
	v, ok := firstHeader(headers, "Grip-Keep-Alive")
	if !ok || trimOWS(v) == "" {
		return nil
	}
	val, rest := cutFirst(v, false)
	var buf [4]param
	params, ok := parseParams(buf[:0], rest)
	if !ok {
		return parseErr("Grip-Keep-Alive", "unterminated quoted string")
	}
	if val == "" {
		return parseErr("Grip-Keep-Alive", "cannot be empty")
	}
	ka, reason := keepAliveFromParams(val, params)
	if reason != "" {
		return parseErr("Grip-Keep-Alive", reason)
	}
	in.KeepAlive = ka
	return nil
}

func keepAliveFromParams(val string, params []param) (*KeepAlive, string) {
	mode, _ := paramValue(params, "mode")
	m, ok := parseKeepAliveMode(mode)
	if !ok {
		return nil, "no such mode '" + mode + "'"
	}
	timeout := DefaultKeepAliveTimeout
	if t, ok := paramValue(params, "timeout"); ok {
		secs, reason := parseSeconds(t)
		if reason != "" {
			return nil, "timeout " + reason
		}
		timeout = clampKeepAliveTimeout(secs)
	}
	format, _ := paramValue(params, "format")
	data, reason := decodeKeepAliveData(val, format)
	if reason != "" {
		return nil, reason
	}
	if len(data) == 0 {
		return nil, "cannot be empty"
	}
	return &KeepAlive{Data: data, Timeout: timeout, Mode: m}, ""
}

// parseSetMeta parses every Grip-Set-Meta header: a list of key=value or
// key="value" elements. Later keys win.
func parseSetMeta(in *Instruct, headers []Header) error {
	var buf [8]string
	elems, ok := listElements(buf[:0], headers, "Grip-Set-Meta", false)
	if !ok {
		return parseErr("Grip-Set-Meta", "unterminated quoted string")
	}
	var pbuf [2]param
	for _, e := range elems {
		params, ok := parseParams(pbuf[:0], e)
		if !ok || len(params) == 0 {
			return parseErr("Grip-Set-Meta", "cannot be empty")
		}
		if in.Meta == nil {
			in.Meta = make(map[string]string)
		}
		in.Meta[params[0].name] = params[0].value
	}
	return nil
}

// parseStatus parses "CODE[ REASON]" from the first Grip-Status header.
func parseStatus(in *Instruct, headers []Header) error {
	v, _ := firstHeader(headers, "Grip-Status")
	if v = trimOWS(v); v == "" {
		return nil
	}
	codeStr, reason, _ := strings.Cut(v, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || !validStatus(code) {
		return parseErr("Grip-Status", "contains invalid status code")
	}
	in.Status, in.Reason = code, trimOWS(reason)
	return nil
}

// validStatus reports whether code can be sent as an HTTP status. Pushpin
// accepts 0-999; codes below 100 cannot be written to a client, and 0 is
// this package's "not set".
func validStatus(code int) bool { return code >= 100 && code <= 999 }

// parseLinks parses every Grip-Link header: "<URI>; rel=next[; timeout=N]"
// or "<URI>; rel=gone". Elements without parameters or with another rel are
// ignored; for each rel the last one wins.
func parseLinks(in *Instruct, headers []Header) error {
	var buf [4]string
	elems, ok := listElements(buf[:0], headers, "Grip-Link", true)
	if !ok {
		return parseErr("Grip-Link", "unterminated quoted string")
	}
	for _, e := range elems {
		if err := parseLink(in, e); err != nil {
			return err
		}
	}
	return nil
}

func parseLink(in *Instruct, elem string) error {
	target, rest := cutFirst(elem, true)
	var buf [4]param
	params, ok := parseParams(buf[:0], rest)
	if !ok {
		return parseErr("Grip-Link", "failed to parse '"+elem+"'")
	}
	if len(params) == 0 {
		return nil
	}
	if len(target) <= 2 || target[0] != '<' || target[len(target)-1] != '>' {
		return parseErr("Grip-Link", "failed to parse value")
	}
	uri := target[1 : len(target)-1]
	if _, err := url.Parse(uri); err != nil {
		return parseErr("Grip-Link", "contains invalid link")
	}
	rel, _ := paramValue(params, "rel")
	switch {
	case nameIs(rel, "next"):
		return setNextLink(in, uri, params)
	case nameIs(rel, "gone"):
		in.GoneLink = &Link{URI: uri}
	}
	return nil
}

func setNextLink(in *Instruct, uri string, params []param) error {
	timeout := DefaultNextLinkTimeout
	if t, ok := paramValue(params, "timeout"); ok {
		secs, reason := parseSeconds(t)
		if reason != "" {
			return parseErr("Grip-Link", "timeout "+reason)
		}
		timeout = time.Duration(secs) * time.Second
	}
	in.NextLink = &Link{URI: uri, Timeout: timeout}
	return nil
}
