package stomp

import (
	"context"
	"encoding/json"
	"fmt"
)

// SendJSON encodes v with encoding/json and sends it like Send, with
// content-type application/json unless WithContentType says otherwise.
func (c *Conn) SendJSON(ctx context.Context, dest string, v any, opts ...SendOption) error {
	return c.sendJSON(ctx, nil, dest, v, opts)
}

func (c *Conn) sendJSON(ctx context.Context, tx *Tx, dest string, v any, opts []SendOption) error {
	body, err := json.Marshal(v)
	if err != nil {
		return settleOpts(opts, fmt.Errorf("stomp: SendJSON: %w", err))
	}
	opts = append([]SendOption{WithContentType("application/json")}, opts...)
	return c.send(ctx, tx, dest, body, opts)
}

// JSON decodes the message body into v with encoding/json. It does not
// look at the content type.
func (m Message) JSON(v any) error {
	if err := json.Unmarshal(m.Body, v); err != nil {
		return fmt.Errorf("stomp: decoding message %q as JSON: %w", m.ID, err)
	}
	return nil
}

// DecodeJSON decodes the message body as JSON into a new T, with
// encoding/json; it does not look at the content type. It allocates the T
// and what decoding it needs.
//
//	order, err := stomp.DecodeJSON[Order](m)
func DecodeJSON[T any](m Message) (T, error) {
	var v T
	err := m.JSON(&v)
	return v, err
}
