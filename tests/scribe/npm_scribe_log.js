// Sends log lines through the npm package `scribe` (0.0.9, on thrift 0.7.0),
// a real, independent Scribe client, to 127.0.0.1:PORT, and exits 0 once
// every line was answered OK.
//
//   node npm_scribe_log.js PORT [COUNT=100000] [WAVE=1000] [CATEGORY=npm_test] [KEYS=0]
//
// Line n is "line <n>", or "k<n % KEYS>:line <n>" when KEYS > 0 (a category
// with --scribe-key-delimiter ':' keys it by "k<n % KEYS>").
//
// The client has no completion callback: send() queues a line and, when
// connected, at once sends the whole queue as one Log call; a TRY_LATER or
// an error answer puts the lines back in the queue, sent again 3 s later (or
// with the next send()). So "all answered OK" is: the queue is empty and the
// Thrift client has no call unanswered (client._reqs, keyed by seqid).
//
// Lines go WAVE at a time, the next wave once those are answered: thrift
// 0.7.0's framed reader loses the bytes of a frame length cut by a socket
// read (they are kept as `residual` and never used) and then throws from
// its data handler, which ends the process. Keeping the replies in flight
// under one read (64 KiB; a Log answer is 27 bytes) keeps every read whole.
// A connection that drops loses its unanswered calls with no callback (the
// client reconnects with a new Thrift client after 3 s): such lines are
// neither retried nor reported, and the drain check above cannot see them.
var Scribe = require('scribe').Scribe;

var port = Number(process.argv[2]);
var count = Number(process.argv[3] || 100000);
var wave = Number(process.argv[4] || 1000);
var category = process.argv[5] || 'npm_test';
var keys = Number(process.argv[6] || 0);
if (!port) {
  console.error('usage: node npm_scribe_log.js PORT [COUNT] [WAVE] [CATEGORY] [KEYS]');
  process.exit(2);
}

var s = new Scribe('127.0.0.1', port, {autoReconnect: true});
var t0 = Date.now(), next = 0, waves = 0;
// Scribe re-emits connection errors; without a listener EventEmitter throws.
s.on('error', function (e) { console.error('scribe error event: ' + (e && e.message)); });

function drained() {
  return s.queue.length === 0 && s.client && Object.keys(s.client._reqs).length === 0;
}

s.open(function (err) {
  if (err) {
    console.error('open failed: ' + err.message);
    process.exit(1);
  }
  var timer = setInterval(function () {
    if (!drained()) {
      if (Date.now() - t0 > 600000) {
        console.error('gave up: ' + s.queue.length + ' queued, ' +
                      Object.keys(s.client._reqs).length + ' unanswered');
        process.exit(1);
      }
      return;
    }
    if (next >= count) {
      clearInterval(timer);
      console.log('sent ' + count + ', all answered OK, ' + waves + ' waves, ' +
                  (Date.now() - t0) + ' ms');
      s.close();
      return;
    }
    var end = Math.min(count, next + wave);
    for (; next < end; next++)
      s.send(category, (keys > 0 ? 'k' + (next % keys) + ':' : '') + 'line ' + next);
    waves++;
  }, 5);
});
