package overlay

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Configuration files are decoded key by key rather than with one
// json.Unmarshal into the struct, so that every error names the exact JSON
// path of the bad value (with array indices), keys match exactly (as in
// protobuf's JSON parser, not case-insensitively), an explicit null counts
// as absent, and an explicit zero can be told from an absent key. Unknown
// keys are ignored, as DC/OS's JSON→protobuf parser ignores them.

// object is a decoded JSON object.
type object map[string]json.RawMessage

// kindName names the JSON kind of a raw value for error messages.
func kindName(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == 'n':
		return "null"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	}
	return "a number"
}

// isNull reports whether raw is absent or null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// decodeObject decodes a JSON object; null or absence gives nil.
func decodeObject(raw json.RawMessage, path string) (object, error) {
	if isNull(raw) {
		return nil, nil
	}
	var m object
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &FieldError{Field: path, Msg: "must be a JSON object, not " + kindName(raw), Err: err}
	}
	return m, nil
}

// decodeTop decodes the whole document, which must be a JSON object.
func decodeTop(data []byte, what string) (object, error) {
	var m object
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &FieldError{Msg: what + " is not a JSON object: " + err.Error(), Err: err}
	}
	if m == nil {
		return nil, &FieldError{Msg: what + " is null; it must be a JSON object"}
	}
	return m, nil
}

// join appends a key to a JSON path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends an array index to a JSON path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// array decodes o[key] as an array; null or absence gives nil.
func (o object) array(key, path string) ([]json.RawMessage, error) {
	raw := o[key]
	if isNull(raw) {
		return nil, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, &FieldError{Field: join(path, key), Msg: "must be an array, not " + kindName(raw), Err: err}
	}
	return a, nil
}

// str decodes o[key] as a string into dst and reports whether it was there.
func (o object) str(key, path string, dst *string) (bool, error) {
	raw := o[key]
	if isNull(raw) {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, &FieldError{Field: join(path, key), Msg: "must be a string, not " + kindName(raw), Err: err}
	}
	return true, nil
}

// integer decodes o[key] as an integer into dst and reports whether it was
// there. Values beyond ±2^31 are refused: no field of these configs is
// that large.
func (o object) integer(key, path string, dst *int) (bool, error) {
	raw := o[key]
	if isNull(raw) {
		return false, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return false, &FieldError{Field: join(path, key), Msg: "must be an integer, not " + describe(raw), Err: err}
	}
	if n > 1<<31-1 || n < -(1<<31) {
		return false, fieldErrorf(join(path, key), "%d is out of range", n)
	}
	*dst = int(n)
	return true, nil
}

// boolean decodes o[key] as a boolean into dst and reports whether it was
// there.
func (o object) boolean(key, path string, dst *bool) (bool, error) {
	raw := o[key]
	if isNull(raw) {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return false, &FieldError{Field: join(path, key), Msg: "must be true or false, not " + kindName(raw), Err: err}
	}
	return true, nil
}

// describe names a raw value for messages: the number itself when it is
// one (24.5), else its kind.
func describe(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if k := kindName(raw); k != "a number" {
		return k
	}
	if len(raw) > 32 {
		return "a number"
	}
	return string(raw)
}
