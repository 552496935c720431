package agent

import (
	"bytes"
	"encoding/json"
	"errors"
)

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func asType[T error](err error, target *T) bool { return errors.As(err, target) }
