package grip

import "fmt"

// ParseError reports an invalid GRIP instruction, WebSocket-over-HTTP body
// or control message.
type ParseError struct {
	// Header is the header or body format the error is about, for example
	// "Grip-Hold" or "application/grip-instruct". It is empty when Reason
	// names its own context (control messages).
	Header string
	// Reason says what is wrong.
	Reason string
}

// Error returns "Header: Reason", or just Reason when Header is empty.
func (e *ParseError) Error() string {
	if e.Header == "" {
		return e.Reason
	}
	return e.Header + ": " + e.Reason
}

// PublishError reports an invalid publish request body. Its text matches
// the body of Pushpin's 400 response (without the trailing newline), for
// example "Invalid format: object does not contain 'items'".
type PublishError struct {
	// Reason is the complete error text.
	Reason string
}

// Error returns Reason.
func (e *PublishError) Error() string { return e.Reason }

// fieldError is an error found while walking decoded JSON. Callers wrap it
// into a ParseError or PublishError.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

func fieldErrorf(format string, a ...any) error {
	return &fieldError{msg: fmt.Sprintf(format, a...)}
}

// parseErr builds a *ParseError.
func parseErr(header, reason string) error {
	return &ParseError{Header: header, Reason: reason}
}
