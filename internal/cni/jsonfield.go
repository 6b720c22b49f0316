package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The configuration is decoded by hand, key by key, so that every error
// names the exact JSON path of the bad value (with array indices), unknown
// keys are ignored, and the few keys whose type varies between Contrail
// releases (numbers written as strings and the reverse) are accepted.

// jsonKind is the kind of a raw JSON value, from its first byte.
type jsonKind int

const (
	kindNull jsonKind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindArray
	kindInvalid
)

func (k jsonKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	}
	return "invalid JSON"
}

// kindOf reports the kind of raw, which comes from a successful decode (so
// it is valid JSON) and may have surrounding white space.
func kindOf(raw json.RawMessage) jsonKind {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return kindNull
	}
	switch c := raw[0]; {
	case c == 'n':
		return kindNull
	case c == '"':
		return kindString
	case c == 't' || c == 'f':
		return kindBool
	case c == '{':
		return kindObject
	case c == '[':
		return kindArray
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber
	}
	return kindInvalid
}

// joinPath appends a key to a dotted JSON path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends an array index to a JSON path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// wrongType reports a value of the wrong JSON type.
func wrongType(path string, raw json.RawMessage, want string) *FieldError {
	return fieldErrorf(path, "must be %s, not %s", want, kindOf(raw))
}

// decodeObject decodes a JSON object into its members. null and absence
// give a nil map.
func decodeObject(raw json.RawMessage, path string) (map[string]json.RawMessage, error) {
	switch kindOf(raw) {
	case kindNull:
		return nil, nil
	case kindObject:
	default:
		return nil, wrongType(path, raw, "an object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &FieldError{Field: path, Msg: "is not a valid JSON object", Err: err}
	}
	return m, nil
}

// decodeArray decodes a JSON array into its elements. null and absence give
// nil.
func decodeArray(raw json.RawMessage, path string) ([]json.RawMessage, error) {
	switch kindOf(raw) {
	case kindNull:
		return nil, nil
	case kindArray:
	default:
		return nil, wrongType(path, raw, "an array")
	}
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, &FieldError{Field: path, Msg: "is not a valid JSON array", Err: err}
	}
	return a, nil
}

// decodeString decodes a JSON string; null and absence give "".
func decodeString(raw json.RawMessage, path string) (string, error) {
	switch kindOf(raw) {
	case kindNull:
		return "", nil
	case kindString:
	default:
		return "", wrongType(path, raw, "a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &FieldError{Field: path, Msg: "is not a valid JSON string", Err: err}
	}
	return s, nil
}

// decodeStringOrNumber decodes a string, or a number written without
// quotes (kept as its JSON text). Contrail's mesos-port and log-level are
// strings that people write as numbers.
func decodeStringOrNumber(raw json.RawMessage, path string) (string, error) {
	if kindOf(raw) == kindNumber {
		return string(bytes.TrimSpace(raw)), nil
	}
	s, err := decodeString(raw, path)
	if err != nil {
		return "", fieldErrorf(path, "must be a string or a number, not %s", kindOf(raw))
	}
	return s, nil
}

// decodeStringList decodes an array of strings.
func decodeStringList(raw json.RawMessage, path string) ([]string, error) {
	elems, err := decodeArray(raw, path)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, e := range elems {
		s, err := decodeString(e, indexPath(path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// decodeInt decodes an integer. With lenient set, a string holding an
// integer ("9091") is accepted too. ok is false for null and absence.
func decodeInt(raw json.RawMessage, path string, lenient bool) (n int, ok bool, err error) {
	text := ""
	switch kindOf(raw) {
	case kindNull:
		return 0, false, nil
	case kindNumber:
		text = string(bytes.TrimSpace(raw))
	case kindString:
		if !lenient {
			return 0, false, wrongType(path, raw, "an integer")
		}
		s, err := decodeString(raw, path)
		if err != nil {
			return 0, false, err
		}
		text = strings.TrimSpace(s)
	default:
		return 0, false, wrongType(path, raw, "an integer")
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		// 5.0 is an integer written as a float; accept it.
		f, ferr := strconv.ParseFloat(text, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
			return 0, false, &FieldError{Field: path, Msg: fmt.Sprintf("must be an integer, not %q", text), Err: err}
		}
		v = int64(f)
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, false, fieldErrorf(path, "%d is out of range", v)
	}
	return int(v), true, nil
}
