package grip

// maxCloseCode is the largest value a WebSocket close code can carry.
const maxCloseCode = 0xffff

// parseAction reads a format's "action" (default "send").
func parseAction(obj map[string]any, pn string) (Action, error) {
	s, ok, err := optString(obj, pn, "action")
	if err != nil || !ok {
		return ActionSend, err
	}
	switch s {
	case "send":
		return ActionSend, nil
	case "hint":
		return ActionHint, nil
	case "close":
		return ActionClose, nil
	case "refresh":
		return ActionRefresh, nil
	}
	// Pushpin fails here with an empty message.
	return ActionSend, fieldErrorf("%s contains 'action' with unknown value", pn)
}

// contentFilters reads a format's "content-filters"; the result is non-nil
// when given.
func contentFilters(obj map[string]any, pn string) ([]string, error) {
	f, _, err := optStringList(obj, pn, "content-filters", "content-filters contains element with wrong type")
	return f, err
}

func parseHTTPStreamFormat(obj map[string]any, pn string) (*HTTPStreamFormat, error) {
	action, err := parseAction(obj, pn)
	if err != nil {
		return nil, err
	}
	if action != ActionSend {
		return &HTTPStreamFormat{Action: action}, nil
	}
	f := &HTTPStreamFormat{Action: action}
	if f.ContentFilters, err = contentFilters(obj, pn); err != nil {
		return nil, err
	}
	content, ok, err := optBytes(obj, pn, "content-bin", "content")
	if err == nil && !ok {
		err = fieldErrorf("%s does not contain 'content' or 'content-bin'", pn)
	}
	if err != nil {
		return nil, err
	}
	f.Content = content
	return f, nil
}

func parseHTTPResponseFormat(obj map[string]any, pn string) (*HTTPResponseFormat, error) {
	action, err := parseAction(obj, pn)
	if err != nil {
		return nil, err
	}
	if action != ActionSend {
		return &HTTPResponseFormat{Action: action}, nil
	}
	f := &HTTPResponseFormat{Action: action, Code: 200}
	steps := []func(*HTTPResponseFormat, map[string]any, string) error{
		responseStatus, responseHeaders, responseFilters, responseBody,
	}
	for _, step := range steps {
		if err := step(f, obj, pn); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func responseStatus(f *HTTPResponseFormat, obj map[string]any, pn string) error {
	code, ok, err := optInt(obj, pn, "code")
	if err == nil && ok && !validStatus(code) {
		err = invalidValue(pn, "code")
	}
	if err != nil {
		return err
	}
	if ok {
		f.Code = code
	}
	if f.Reason, _, err = optString(obj, pn, "reason"); err != nil {
		return err
	}
	if err := checkReason(f.Reason); err != nil {
		return err
	}
	if f.Reason == "" {
		f.Reason = StatusText(f.Code)
	}
	return nil
}

func responseHeaders(f *HTTPResponseFormat, obj map[string]any, pn string) (err error) {
	f.Headers, err = optHeaders(obj, pn)
	return err
}

func responseFilters(f *HTTPResponseFormat, obj map[string]any, pn string) (err error) {
	f.ContentFilters, err = contentFilters(obj, pn)
	return err
}

// responseBody reads body-bin, body or body-patch, in Pushpin's order of
// precedence.
func responseBody(f *HTTPResponseFormat, obj map[string]any, pn string) error {
	body, ok, err := optBytes(obj, pn, "body-bin", "body")
	if ok || err != nil {
		f.Body = body
		return err
	}
	patch, ok, err := optList(obj, pn, "body-patch")
	if err != nil {
		return err
	}
	if !ok {
		return fieldErrorf("%s does not contain 'body', 'body-bin', or 'body-patch'", pn)
	}
	f.BodyPatch = rawJSON(patch)
	return nil
}

func parseWSMessageFormat(obj map[string]any, pn string) (*WSMessageFormat, error) {
	action, err := parseAction(obj, pn)
	if err != nil {
		return nil, err
	}
	f := &WSMessageFormat{Action: action}
	switch action {
	case ActionSend:
		err = wsSend(f, obj, pn)
	case ActionClose:
		err = wsClose(f, obj, pn)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func wsSend(f *WSMessageFormat, obj map[string]any, pn string) error {
	typ, hasType, err := wsMessageType(obj, pn)
	if err != nil {
		return err
	}
	if f.ContentFilters, err = contentFilters(obj, pn); err != nil {
		return err
	}
	_, isBin, err := optString(obj, pn, "content-bin")
	if err != nil {
		return err
	}
	content, ok, err := optBytes(obj, pn, "content-bin", "content")
	if err != nil {
		return err
	}
	if !ok && (typ == WSText || typ == WSBinary) {
		return fieldErrorf("%s does not contain 'content' or 'content-bin'", pn)
	}
	if !hasType && isBin {
		typ = WSBinary
	}
	f.Type, f.Content = typ, content
	return nil
}

// wsMessageType reads "type"; text unless given.
func wsMessageType(obj map[string]any, pn string) (WSType, bool, error) {
	s, ok, err := optString(obj, pn, "type")
	if err != nil || !ok {
		return WSText, false, err
	}
	switch s {
	case "text":
		return WSText, true, nil
	case "binary":
		return WSBinary, true, nil
	case "ping":
		return WSPing, true, nil
	case "pong":
		return WSPong, true, nil
	}
	return WSText, false, fieldErrorf("%s contains 'type' with unknown value", pn)
}

func wsClose(f *WSMessageFormat, obj map[string]any, pn string) error {
	code, _, err := optNonNegInt(obj, pn, "code")
	if err == nil && code > maxCloseCode {
		err = invalidValue(pn, "code")
	}
	if err != nil {
		return err
	}
	f.Code = code
	f.Reason, _, err = optString(obj, pn, "reason")
	return err
}
