// Package connwatch notices when the peer of a held connection goes away,
// without a goroutine or a read buffer per connection: on Linux one epoll
// set watches every registered socket for hang-up (EPOLLRDHUP), and a single
// goroutine runs the callbacks. Add never reads from the sockets, so bytes a
// client sends stay in the socket for whoever serves it next.
//
// AddReadable also reports sockets that have bytes to read (Linux only),
// for callers that read them without a goroutine of their own (WebSocket
// client frames): ReadNonblock reads what has arrived.
package connwatch

import "errors"

// ErrWouldBlock is ReadNonblock's answer when the socket has nothing yet.
var ErrWouldBlock = errors.New("connwatch: would block")

// ErrUnsupported is AddReadable's and ReadNonblock's answer on systems
// without epoll.
var ErrUnsupported = errors.ErrUnsupported
