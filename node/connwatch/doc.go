// Package connwatch notices when the peer of a held connection goes away,
// without a goroutine or a read buffer per connection: on Linux one epoll
// set watches every registered socket for hang-up (EPOLLRDHUP), and a single
// goroutine runs the callbacks. It never reads from the sockets, so bytes a
// client sends stay in the socket for whoever serves it next.
package connwatch
