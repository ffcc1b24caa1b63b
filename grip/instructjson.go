package grip

import (
	"encoding/json"
	"errors"
	"time"
)

// gripInstructType names the body format in ParseErrors.
const gripInstructType = "application/grip-instruct"

// applyJSON applies an application/grip-instruct body on top of what the
// headers said, as Pushpin does: hold.channels are added to the header
// channels, other hold fields override, and "response" (possibly empty)
// replaces the origin response.
func (in *Instruct) applyJSON(status int, body []byte) error {
	if status != 200 {
		return parseErr(gripInstructType, "response code for application/grip-instruct content must be 200")
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return parseErr(gripInstructType, "failed to parse application/grip-instruct content as JSON")
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return parseErr(gripInstructType, "instruct must be an object")
	}
	err := in.applyJSONHold(obj)
	if err == nil {
		err = in.applyJSONResponse(obj, status)
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return parseErr(gripInstructType, fe.msg)
	}
	return err
}

func (in *Instruct) applyJSONHold(obj map[string]any) error {
	hold, ok, err := optObject(obj, "instruct", "hold")
	if !ok || err != nil {
		return err
	}
	steps := []func(map[string]any) error{
		in.jsonHoldMode, in.jsonChannels, in.jsonTimeout, in.jsonKeepAlive, in.jsonMeta,
	}
	for _, step := range steps {
		if err := step(hold); err != nil {
			return err
		}
	}
	return nil
}

func (in *Instruct) jsonHoldMode(hold map[string]any) error {
	mode, ok, err := optString(hold, "hold", "mode")
	switch {
	case err != nil:
		return err
	case !ok || mode == "response":
		in.Hold = HoldResponse
	case mode == "stream":
		in.Hold = HoldStream
	default:
		return fieldErrorf("hold 'mode' must be set to either 'response' or 'stream'")
	}
	return nil
}

func (in *Instruct) jsonChannels(hold map[string]any) error {
	list, ok, err := optList(hold, "hold", "channels")
	if err == nil && !ok {
		err = fieldErrorf("hold does not contain 'channels'")
	}
	if err != nil {
		return err
	}
	for _, v := range list {
		c, err := jsonChannel(v)
		if err != nil {
			return err
		}
		in.Channels = append(in.Channels, c)
	}
	return nil
}

func jsonChannel(v any) (Channel, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Channel{}, fieldErrorf("channel is not an object")
	}
	name, err := reqString(obj, "channel", "name")
	if err == nil && name == "" {
		err = invalidValue("channel", "name")
	}
	if err != nil {
		return Channel{}, err
	}
	c := Channel{Name: name}
	if c.PrevID, _, err = optString(obj, "channel", "prev-id"); err != nil {
		return Channel{}, err
	}
	filters, _, err := optStringList(obj, "channel", "filters", "filters contains value with wrong type")
	if err != nil {
		return Channel{}, err
	}
	if len(filters) > MaxChannelFilters {
		return Channel{}, fieldErrorf("too many filters for channel '%s'", name)
	}
	if len(filters) > 0 {
		c.Filters = filters
	}
	return c, nil
}

func (in *Instruct) jsonTimeout(hold map[string]any) error {
	secs, ok, err := optNonNegInt(hold, "hold", "timeout")
	if ok {
		in.Timeout = time.Duration(secs) * time.Second
	}
	return err
}

// jsonKeepAlive applies hold.keep-alive {content|content-bin, timeout,
// mode}. Content replaces any Grip-Keep-Alive; an empty content disables
// keep-alives; without content only timeout and mode of an existing header
// keep-alive change (mode too, when given). Pushpin ignores "mode" here;
// this package honours it.
func (in *Instruct) jsonKeepAlive(hold map[string]any) error {
	const pn = "keep-alive"
	ka, ok, err := optObject(hold, "hold", pn)
	if !ok || err != nil {
		return err
	}
	data, hasData, err := optBytes(ka, pn, "content-bin", "content")
	if err != nil {
		return err
	}
	secs, hasTimeout, err := optNonNegInt(ka, pn, "timeout")
	if err != nil {
		return err
	}
	modeStr, hasMode, err := optString(ka, pn, "mode")
	if err != nil {
		return err
	}
	next := KeepAlive{}
	if in.KeepAlive != nil {
		next = *in.KeepAlive
	}
	if hasMode {
		if next.Mode, ok = parseKeepAliveMode(modeStr); !ok {
			return invalidValue(pn, "mode")
		}
	}
	if hasData {
		next.Data = data
	}
	next.Timeout = DefaultKeepAliveTimeout
	if hasTimeout {
		next.Timeout = clampKeepAliveTimeout(secs)
	}
	in.KeepAlive = nil
	if len(next.Data) > 0 {
		in.KeepAlive = &next
	}
	return nil
}

func (in *Instruct) jsonMeta(hold map[string]any) error {
	meta, err := optStringMap(hold, "hold", "meta")
	if err != nil {
		return err
	}
	for k, v := range meta {
		if in.Meta == nil {
			in.Meta = make(map[string]string, len(meta))
		}
		in.Meta[k] = v
	}
	return nil
}

// applyJSONResponse builds Response from the "response" object. Code
// defaults to Grip-Status or the origin status; reason to Grip-Status's
// reason unless a code is given, then to StatusText(Code).
func (in *Instruct) applyJSONResponse(obj map[string]any, status int) error {
	resp := &Response{Code: status, Reason: in.Reason}
	if in.Status != 0 {
		resp.Code = in.Status
	}
	if err := fillJSONResponse(resp, obj); err != nil {
		return err
	}
	if resp.Reason == "" {
		resp.Reason = StatusText(resp.Code)
	}
	in.Response = resp
	return nil
}

func fillJSONResponse(resp *Response, obj map[string]any) error {
	const pn = "response"
	r, ok, err := optObject(obj, "instruct", pn)
	if !ok || err != nil {
		return err
	}
	code, hasCode, err := optInt(r, pn, "code")
	if err == nil && hasCode && !validStatus(code) {
		err = invalidValue(pn, "code")
	}
	if err != nil {
		return err
	}
	if hasCode {
		resp.Code, resp.Reason = code, ""
	}
	reason, _, err := optString(r, pn, "reason")
	if err != nil {
		return err
	}
	if err := checkReason(reason); err != nil {
		return err
	}
	if reason != "" {
		resp.Reason = reason
	}
	if resp.Headers, err = optHeaders(r, pn); err != nil {
		return err
	}
	resp.Body, _, err = optBytes(r, pn, "body-bin", "body")
	return err
}
