package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// ErrorBody is Marathon's JSON error body (R:v2/types/error.raml):
// {"message": "...", "details": [{"path": "/x", "errors": ["..."]}]}.
// Deployments is set on 409 "locked by deployment" answers.
type ErrorBody struct {
	Message     string          `json:"message"`
	Details     []ErrorDetail   `json:"details,omitempty"`
	Deployments []DeploymentRef `json:"deployments,omitempty"`
}

// ErrorDetail is one entry of ErrorBody.Details.
type ErrorDetail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// DeploymentRef is {"id": "<deployment id>"}.
type DeploymentRef struct {
	ID string `json:"id"`
}

// DefinitionError is what DecodeApp and DecodePod return for a
// definition Marathon would refuse: Status 400 with message "Invalid
// JSON" when the body does not parse (or a field has the wrong JSON
// type), 422 with message "Object is not valid" when validation fails.
type DefinitionError struct {
	Status int
	Body   ErrorBody
}

func (e *DefinitionError) Error() string {
	var parts []string
	for _, d := range e.Body.Details {
		parts = append(parts, d.Path+": "+strings.Join(d.Errors, "; "))
	}
	if len(parts) == 0 {
		return strings.ToLower(e.Body.Message)
	}
	return strings.ToLower(e.Body.Message) + ": " + strings.Join(parts, ", ")
}

// validation collects validation failures by path, in first-seen order.
type validation struct {
	details []ErrorDetail
}

func (v *validation) add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for i := range v.details {
		if v.details[i].Path == path {
			v.details[i].Errors = append(v.details[i].Errors, msg)
			return
		}
	}
	v.details = append(v.details, ErrorDetail{Path: path, Errors: []string{msg}})
}

func (v *validation) err() error {
	if len(v.details) == 0 {
		return nil
	}
	return &DefinitionError{Status: http.StatusUnprocessableEntity, Body: ErrorBody{Message: "Object is not valid", Details: v.details}}
}

// invalidJSON converts a decoding error into Marathon's 400 body. Type
// errors name the field as a path and use Play JSON's error keys.
func invalidJSON(err error) error {
	detail := ErrorDetail{Path: "/", Errors: []string{err.Error()}}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := "/"
		if te.Field != "" {
			path = "/" + strings.ReplaceAll(te.Field, ".", "/")
		}
		detail = ErrorDetail{Path: path, Errors: []string{"error.expected." + playType(te.Type.Kind().String())}}
	}
	return &DefinitionError{Status: http.StatusBadRequest, Body: ErrorBody{Message: "Invalid JSON", Details: []ErrorDetail{detail}}}
}

// playType maps a Go kind to the Play JSON type name of its error key.
func playType(kind string) string {
	switch kind {
	case "string":
		return "jsstring"
	case "bool":
		return "jsboolean"
	case "slice", "array":
		return "jsarray"
	case "map", "struct", "ptr":
		return "jsobject"
	default:
		return "jsnumber"
	}
}

// Messages of Marathon's 404 bodies (S:api/MarathonExceptionMapper.scala).
func appNotFound(id string) ErrorBody {
	return ErrorBody{Message: fmt.Sprintf("App '%s' does not exist", id)}
}

func podNotFound(id string) ErrorBody {
	return ErrorBody{Message: fmt.Sprintf("Pod '%s' does not exist", id)}
}

func taskNotFound(id string) ErrorBody {
	return ErrorBody{Message: fmt.Sprintf("Task '%s' does not exist", id)}
}

// lockedBody is the 409 body of a write on a run spec that a running
// deployment holds.
func lockedBody(ids []string) ErrorBody {
	sort.Strings(ids)
	b := ErrorBody{Message: "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."}
	for _, id := range ids {
		b.Deployments = append(b.Deployments, DeploymentRef{ID: id})
	}
	return b
}

// htmlError is the Jetty error page Marathon's servlet filters produce
// (401 from Basic auth, 405 from the event stream servlet, 502 from the
// leader proxy).
func htmlError(w http.ResponseWriter, r *http.Request, code int, reason string) {
	w.Header().Set("Content-Type", "text/html;charset=iso-8859-1")
	w.Header().Set("Cache-Control", "must-revalidate,no-cache,no-store")
	w.WriteHeader(code)
	text := http.StatusText(code)
	fmt.Fprintf(w, "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n"+
		"<title>Error %d %s</title>\n</head>\n<body><h2>HTTP ERROR %d</h2>\n<p>Problem accessing %s. Reason:\n"+
		"<pre>    %s</pre></p><hr><a href=\"http://eclipse.org/jetty\">Powered by Jetty:// 9.4</a><hr/>\n\n</body>\n</html>\n",
		code, text, code, htmlEscape(r.URL.Path), htmlEscape(reason))
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
