package api

import (
	"errors"
	"fmt"
)

// HTTP statuses of errors, spelled out so that this package (which the
// CNI plugin links) does not need net/http.
const (
	statusBadRequest          = 400
	statusNotFound            = 404
	statusConflict            = 409
	statusGone                = 410
	statusUnprocessableEntity = 422
)

// Sentinel errors shared by the controller and its clients. An Error wraps
// one of them so that errors.Is works on both sides of the wire.
var (
	ErrInvalid   = errors.New("invalid")
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrExhausted = errors.New("exhausted")
	ErrGone      = errors.New("gone")
	ErrInUse     = errors.New("in use")
)

// Error is the JSON body of every 4xx/5xx answer: {"error": ..., "field": ...}.
// Field names the offending JSON field with a dotted path (subnets[1].gateway)
// when the error is about one.
type Error struct {
	Message string `json:"error"`
	Field   string `json:"field,omitempty"`
	Code    int    `json:"-"`
	kind    error
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Unwrap returns the sentinel the error belongs to.
func (e *Error) Unwrap() error { return e.kind }

// Invalid reports bad input in one field (HTTP 400).
func Invalid(field, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Field: field, Code: statusBadRequest, kind: ErrInvalid}
}

// NotFound reports a missing resource (HTTP 404).
func NotFound(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Code: statusNotFound, kind: ErrNotFound}
}

// Conflict reports a write that collides with existing state (HTTP 409).
func Conflict(field, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Field: field, Code: statusConflict, kind: ErrConflict}
}

// Exhausted reports that a network has no free address or block (HTTP 409).
func Exhausted(field, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Field: field, Code: statusConflict, kind: ErrExhausted}
}

// InUse reports a delete refused because others still refer to the resource
// (HTTP 409).
func InUse(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Code: statusConflict, kind: ErrInUse}
}

// Gone reports a watch revision that has been compacted (HTTP 410).
func Gone(format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Code: statusGone, kind: ErrGone}
}

// ErrorFromStatus rebuilds an Error from an HTTP status and body fields, so
// that clients can use errors.Is with the sentinels.
func ErrorFromStatus(code int, message, field string) *Error {
	e := &Error{Message: message, Field: field, Code: code}
	switch code {
	case statusBadRequest, statusUnprocessableEntity:
		e.kind = ErrInvalid
	case statusNotFound:
		e.kind = ErrNotFound
	case statusGone:
		e.kind = ErrGone
	case statusConflict:
		e.kind = ErrConflict
	}
	return e
}
