package marathon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// ErrNoLeader is returned (wrapped) by Client.Leader when Marathon answers
// that there is no leader.
var ErrNoLeader = errors.New("marathon has no leader")

// APIError is a non-2xx answer from Marathon (§1.3). JSON error bodies
// ({"message":…,"details":[…]}) are decoded; other bodies (HTML pages of
// the leader filter, Basic-auth 401s, the concurrency limit's text) are
// kept as text.
type APIError struct {
	// Method and URL of the request (URL without credentials).
	Method string
	URL    string
	// StatusCode is the HTTP status, e.g. 404.
	StatusCode int
	// Message is the JSON message, or the text of a non-JSON body (the
	// title of an HTML page), shortened.
	Message string
	// Details are the JSON details (validation errors).
	Details []ErrorDetail
	// Deployments are the deployments a 409 "locked" error names.
	Deployments []DeploymentRef
	// Body is the raw body when it was not JSON, shortened to 4 KiB.
	Body string
}

// ErrorDetail is one entry of an error's details: a path and its errors.
type ErrorDetail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "; %s: %s", d.Path, strings.Join(d.Errors, ", "))
	}
	return b.String()
}

// IsNotFound tells whether err is (or wraps) a 404 from Marathon: the app,
// pod, group or task does not exist.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// StatusCode returns the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

const maxErrorBody = 4 << 10

var htmlTitle = regexp.MustCompile(`(?is)<title>(.*?)</title>`)

// newAPIError builds the error for a non-2xx response with the given body.
func newAPIError(method, url string, status int, body []byte) *APIError {
	e := &APIError{Method: method, URL: url, StatusCode: status}
	var j struct {
		Message     *string         `json:"message"`
		Details     []ErrorDetail   `json:"details"`
		Deployments []DeploymentRef `json:"deployments"`
	}
	if err := json.Unmarshal(body, &j); err == nil && j.Message != nil {
		e.Message = unwrapMessage(*j.Message)
		e.Details = j.Details
		e.Deployments = j.Deployments
		return e
	}
	text := string(body)
	if len(text) > maxErrorBody {
		text = text[:maxErrorBody]
	}
	e.Body = text
	if m := htmlTitle.FindStringSubmatch(text); m != nil {
		e.Message = shorten(strings.TrimSpace(m[1]))
	} else {
		e.Message = shorten(strings.TrimSpace(text))
	}
	return e
}

// unwrapMessage undoes GET /v2/pods/{id}'s quirk of putting a JSON error
// object inside the message string (§1.3).
func unwrapMessage(m string) string {
	if !strings.HasPrefix(strings.TrimSpace(m), "{") {
		return m
	}
	var inner struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(m), &inner); err == nil && inner.Message != "" {
		return inner.Message
	}
	return m
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 200
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

// joinedError is several errors in one line, separated by "; ".
type joinedError []error

func (j joinedError) Error() string {
	parts := make([]string, len(j))
	for i, e := range j {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (j joinedError) Unwrap() []error { return j }
