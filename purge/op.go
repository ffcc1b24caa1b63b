package purge

import (
	"encoding/json"
	"fmt"

	"github.com/edgepush/edgepush/grip"
)

// Kind names an operation as the control API and the tier know it.
type Kind string

// The operations.
const (
	// KindPublish is POST /publish/: Pushpin publish items.
	KindPublish Kind = "publish"
	// KindPurge is POST /purge/: purges only.
	KindPurge Kind = "purge"
	// KindPurgePublish is POST /purge-publish/: purges, then items.
	KindPurgePublish Kind = "purge-publish"
)

// Op is one publish, purge or purge-and-publish, however it reached this
// node: from a client of the control API, from a tier peer, or replayed
// from the tier's log of recent purges. Every path decodes it with
// Decode (or the Decode* function of its kind) and runs it with
// Applier.Apply.
type Op struct {
	// Kind says what the operation does.
	Kind Kind
	// Purge is what to purge; nil for a publish.
	Purge *Request
	// Items are published after the purges, in order.
	Items []grip.Item

	// wire is the operation as the tier carries it (Encode).
	wire []byte
}

// Decode reads an operation of kind as the tier carries it (Encode's
// output).
func Decode(kind Kind, data []byte) (*Op, error) {
	switch kind {
	case KindPublish:
		return DecodePublish(data)
	case KindPurge:
		return DecodePurge(data, "")
	case KindPurgePublish:
		return DecodePurgePublish(data)
	}
	return nil, fmt.Errorf("purge: unknown operation %q", kind)
}

// DecodePublish reads a POST /publish/ body (Pushpin's {"items": [...]}).
// Its errors are grip's, with Pushpin's texts.
func DecodePublish(body []byte) (*Op, error) {
	req, err := grip.ParsePublish(body)
	if err != nil {
		return nil, err
	}
	return &Op{Kind: KindPublish, Items: req.Items, wire: body}, nil
}

// DecodePurge reads a POST /purge/ request: a JSON body, Fastly's shape
// (keys in a Surrogate-Key request header, space-separated), or both.
func DecodePurge(body []byte, surrogateKeyHeader string) (*Op, error) {
	req, err := ParsePurge(body, surrogateKeyHeader)
	if err != nil {
		return nil, err
	}
	return purgeOp(req)
}

func purgeOp(req *Request) (*Op, error) {
	// Re-encoded: the keys may have come in a header.
	wire, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("purge: encode: %w", err)
	}
	return &Op{Kind: KindPurge, Purge: req, wire: wire}, nil
}

// DecodePurgePublish reads a POST /purge-publish/ body.
func DecodePurgePublish(body []byte) (*Op, error) {
	req, items, err := ParsePurgePublish(body)
	if err != nil {
		return nil, err
	}
	op := &Op{Kind: KindPurgePublish, Purge: req, wire: body}
	if items != nil {
		pub, err := grip.ParsePublish(items)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		op.Items = pub.Items
	}
	return op, nil
}

// Encode returns the operation as the tier carries it to other members:
// the body it came in, or for /purge/ its request as JSON. It must not
// be modified.
func (op *Op) Encode() []byte { return op.wire }

// PurgePart returns the operation reduced to its purges, as the tier's
// log of recent purges replays it to a member that missed it (its
// publishes are long delivered by then); ok is false when it purges
// nothing.
func (op *Op) PurgePart() (purgeOnly *Op, ok bool) {
	if op.Purge == nil || len(op.Purge.Targets()) == 0 {
		return nil, false
	}
	if op.Kind == KindPurge {
		return op, true
	}
	p, err := purgeOp(op.Purge)
	return p, err == nil
}

// Publisher delivers published items to this node's subscribers.
type Publisher interface {
	Publish(item *grip.Item)
}

// Forwarder sends an operation to every other member of the tier (one
// hop: members that receive it do not forward it again).
type Forwarder interface {
	Forward(kind Kind, data []byte)
}

// Origin says where an operation came from.
type Origin int

const (
	// FromClient: the control API; the operation is forwarded to the
	// tier after it is applied here.
	FromClient Origin = iota
	// FromPeer: another member (directly or through the log of recent
	// purges); applied here only.
	FromPeer
)

// Applier runs operations on this node: purges first (rate-limited per
// target by the Limiter), then publishes, then, for operations from
// clients, forwarding to the tier. Purges before publishes: a client that
// gets a published update and then fetches never finds the pre-purge copy.
type Applier struct {
	// Limiter applies purges. Required.
	Limiter *Limiter
	// Publisher delivers items. Required.
	Publisher Publisher
	// Forwarder, if set, sends operations from clients to the tier.
	Forwarder Forwarder
}

// Apply runs op and reports what became of each purge.
func (a *Applier) Apply(op *Op, from Origin) Response {
	resp := Response{Purged: []Outcome{}, Deferred: []Outcome{}}
	if op.Purge != nil {
		soft := op.Purge.IsSoft()
		for _, t := range op.Purge.Targets() {
			resp.Add(a.Limiter.Request(t, soft))
		}
	}
	for i := range op.Items {
		a.Publisher.Publish(&op.Items[i])
	}
	resp.Published = len(op.Items)
	if from == FromClient && a.Forwarder != nil {
		a.Forwarder.Forward(op.Kind, op.wire)
	}
	return resp
}
