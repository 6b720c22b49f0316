package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DecodeError reports a JSON document that could not be decoded: what was
// being decoded, the JSON path of the offending value ("$" is the root,
// e.g. "$.apps[0].tasks[1].ports[0]") and the byte offset.
type DecodeError struct {
	// What names the document ("app", "apps response", "event
	// status_update_event", …).
	What string
	// Path is the JSON path of the value that failed, or "$" when the
	// document as a whole is at fault.
	Path string
	// Offset is the byte offset in the document where decoding failed.
	Offset int64
	// Err is the underlying encoding/json error.
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s at %s: %v", e.What, e.Path, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// decodeJSON decodes one JSON value from data into v. Unknown fields are
// ignored, null leaves the zero value, trailing non-whitespace is an error.
// Errors are *DecodeError with the JSON path of the offending value.
func decodeJSON(what string, data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	path := "$"
	if off >= 0 {
		path = jsonPathAt(data, off)
	} else {
		off = 0
	}
	return &DecodeError{What: what, Path: path, Offset: off, Err: err}
}

// pathFrame is one open object or array while scanning tokens.
type pathFrame struct {
	array   bool
	index   int    // index of the current element (arrays), -1 before the first
	key     string // current member name (objects)
	wantKey bool   // the next string token is a member name
}

// jsonPathAt returns the JSON path of the token that ends at or after byte
// offset off of data: the value encoding/json complained about (its type
// and syntax errors carry the offset just past the offending token). When
// data is malformed before off, the path of the last good position is
// returned.
func jsonPathAt(data []byte, off int64) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []pathFrame
	beginValue := func() {
		if n := len(stack); n > 0 && stack[n-1].array {
			stack[n-1].index++
		}
	}
	endValue := func() {
		if n := len(stack); n > 0 && !stack[n-1].array {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return renderPath(stack)
		}
		end := dec.InputOffset()
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				beginValue()
				if end >= off {
					return renderPath(stack)
				}
				stack = append(stack, pathFrame{array: t == '[', index: -1, wantKey: t == '{'})
			default: // '}' or ']'
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
				if end >= off {
					return renderPath(stack)
				}
				endValue()
			}
		default:
			if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].wantKey {
				key, _ := t.(string)
				stack[n-1].key = key
				stack[n-1].wantKey = false
				if end >= off {
					return renderPath(stack)
				}
				continue
			}
			beginValue()
			if end >= off {
				return renderPath(stack)
			}
			endValue()
		}
	}
}

// renderPath writes a stack of frames as "$.a[0].b"; member names that are
// not plain identifiers are quoted: $["a b"].
func renderPath(stack []pathFrame) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, f := range stack {
		switch {
		case f.array:
			if f.index >= 0 {
				b.WriteByte('[')
				b.WriteString(strconv.Itoa(f.index))
				b.WriteByte(']')
			}
		case f.key == "" && f.wantKey:
			// An object before its first member.
		case plainKey(f.key):
			b.WriteByte('.')
			b.WriteString(f.key)
		default:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(f.key))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// DecodeApp decodes one app object (a bare App, as in POST bodies, group
// trees and api_post_event.appDefinition).
func DecodeApp(data []byte) (*App, error) {
	var a App
	if err := decodeJSON("app", data, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeApps decodes a GET /v2/apps response: {"apps":[…]}.
func DecodeApps(data []byte) ([]App, error) {
	var r struct {
		Apps []App `json:"apps"`
	}
	if err := decodeJSON("apps response", data, &r); err != nil {
		return nil, err
	}
	return r.Apps, nil
}

// DecodeAppResponse decodes a GET /v2/apps/{id} response: {"app":{…}}.
func DecodeAppResponse(data []byte) (*App, error) {
	var r struct {
		App *App `json:"app"`
	}
	if err := decodeJSON("app response", data, &r); err != nil {
		return nil, err
	}
	if r.App == nil {
		return nil, &DecodeError{What: "app response", Path: "$.app", Err: errors.New("missing")}
	}
	return r.App, nil
}

// DecodeTasks decodes a GET /v2/tasks or /v2/apps/{id}/tasks response:
// {"tasks":[…]}.
func DecodeTasks(data []byte) ([]Task, error) {
	var r struct {
		Tasks []Task `json:"tasks"`
	}
	if err := decodeJSON("tasks response", data, &r); err != nil {
		return nil, err
	}
	return r.Tasks, nil
}

// DecodePod decodes one pod definition.
func DecodePod(data []byte) (*Pod, error) {
	var p Pod
	if err := decodeJSON("pod", data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodePods decodes a GET /v2/pods response: a bare array of pods.
func DecodePods(data []byte) ([]Pod, error) {
	var ps []Pod
	if err := decodeJSON("pods response", data, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// DecodePodStatus decodes one pod status (GET /v2/pods/{id}::status).
func DecodePodStatus(data []byte) (*PodStatus, error) {
	var s PodStatus
	if err := decodeJSON("pod status", data, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DecodePodStatuses decodes a GET /v2/pods/::status response: a bare
// array of pod statuses.
func DecodePodStatuses(data []byte) ([]PodStatus, error) {
	var ss []PodStatus
	if err := decodeJSON("pod statuses response", data, &ss); err != nil {
		return nil, err
	}
	return ss, nil
}

// DecodeInfo decodes a GET /v2/info response.
func DecodeInfo(data []byte) (*Info, error) {
	var i Info
	if err := decodeJSON("info", data, &i); err != nil {
		return nil, err
	}
	return &i, nil
}

// DecodeGroup decodes a group tree (GET /v2/groups).
func DecodeGroup(data []byte) (*Group, error) {
	var g Group
	if err := decodeJSON("group", data, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// DecodeDeployments decodes a GET /v2/deployments response: a bare array.
func DecodeDeployments(data []byte) ([]Deployment, error) {
	var ds []Deployment
	if err := decodeJSON("deployments response", data, &ds); err != nil {
		return nil, err
	}
	return ds, nil
}
