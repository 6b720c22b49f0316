package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/types"
)

// Error codes printed in the CNI error JSON. Codes below 100 are the CNI
// specification's (the same numbers as the types.Err* constants of the CNI
// library); 100 and above are Weft's. See README.md for what an operator
// should do about each.
const (
	// CodeIncompatibleVersion: the config's cniVersion is not one this
	// plugin speaks, or the command needs a newer cniVersion.
	CodeIncompatibleVersion uint = types.ErrIncompatibleCNIVersion // 1
	// CodeInvalidEnv: a required CNI_* environment variable is missing or
	// malformed.
	CodeInvalidEnv uint = types.ErrInvalidEnvironmentVariables // 4
	// CodeIOFailure: stdin could not be read or the result not written.
	CodeIOFailure uint = types.ErrIOFailure // 5
	// CodeDecodingFailure: stdin is not a JSON object.
	CodeDecodingFailure uint = types.ErrDecodingFailure // 6
	// CodeInvalidConfig: a key of the network configuration, including
	// args["org.apache.mesos"].network_info, has a bad value.
	CodeInvalidConfig uint = types.ErrInvalidNetworkConfig // 7
	// CodeTryAgainLater: the Weft agent is not reachable, did not answer in
	// time or is not ready yet. The runtime may retry.
	CodeTryAgainLater uint = types.ErrTryAgainLater // 11
	// CodePluginNotAvailable: STATUS found the agent unreachable or not
	// ready.
	CodePluginNotAvailable uint = types.ErrPluginNotAvailable // 50
	// CodeInternal: a bug in the plugin.
	CodeInternal uint = types.ErrInternal // 999

	// CodeAgentRejected: the agent refused the request as invalid (HTTP
	// 400/422); the message names the offending field.
	CodeAgentRejected uint = 100
	// CodeNotFound: something the request names does not exist (HTTP 404):
	// the network, project, subnet or security group.
	CodeNotFound uint = 101
	// CodeConflict: the request collides with existing state (HTTP 409): an
	// explicit address already in use, or no free address left.
	CodeConflict uint = 102
	// CodeAgentFailed: the agent failed with a server error (HTTP 5xx other
	// than 503/504) or answered with an unexpected status.
	CodeAgentFailed uint = 103
	// CodeCheckFailed: CHECK found that the attachment differs from what the
	// agent expects.
	CodeCheckFailed uint = 104
	// CodeBadResult: the agent's answer could not be turned into a CNI
	// result (for example no address to report in a 0.2.0 result).
	CodeBadResult uint = 105
)

// Error is a CNI error: the plugin prints it as JSON on stdout and exits 1.
// Msg is short and says what to do; Details holds the underlying error.
type Error struct {
	Code    uint
	Msg     string
	Details string
	// Field is the configuration or agent field the error is about, if any;
	// it is already part of Msg.
	Field string
	// Err is the underlying error, for errors.Is and errors.As.
	Err error
}

// Error returns the message and the details.
func (e *Error) Error() string {
	if e.Details != "" {
		return e.Msg + ": " + e.Details
	}
	return e.Msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// newError builds an Error whose details are err's text.
func newError(code uint, err error, format string, args ...any) *Error {
	e := &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
	if err != nil {
		e.Details = err.Error()
	}
	return e
}

// errorJSON is the CNI error document. cniVersion is not in the CNI
// library's types.Error, but the specification shows it and Mesos prints it.
type errorJSON struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

// PrintTo writes e as a CNI error JSON document for cniVersion.
func (e *Error) PrintTo(w io.Writer, cniVersion string) error {
	b, err := json.MarshalIndent(errorJSON{CNIVersion: cniVersion, Code: e.Code, Msg: e.Msg, Details: e.Details}, "", "    ")
	if err != nil {
		return fmt.Errorf("encode error: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write error: %w", err)
	}
	return nil
}

// asError turns any error into an *Error, keeping one that already is.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(CodeInternal, err, "weft-cni internal error")
}

// FieldError is a bad value in one configuration field. Field is the dotted
// JSON path, with [i] for array elements, for example
// args.org.apache.mesos.network_info.ip_addresses[0].ip_address.
type FieldError struct {
	Field string
	Msg   string
	// Err is the underlying parse error, if any; it becomes the details of
	// the CNI error.
	Err error
}

// Unwrap returns the underlying parse error.
func (e *FieldError) Unwrap() error { return e.Err }

// Error returns "field: message".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// fieldErrorf builds a FieldError.
func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// configError turns a parse error into the CNI error: code 6 for stdin that
// is not JSON, code 7 naming the field for a bad value.
func configError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		e := &Error{
			Code:  CodeInvalidConfig,
			Msg:   "invalid network configuration: " + fe.Error(),
			Field: fe.Field,
			Err:   err,
		}
		if fe.Err != nil {
			e.Details = fe.Err.Error()
		}
		return e
	}
	return newError(CodeInvalidConfig, err, "invalid network configuration")
}
