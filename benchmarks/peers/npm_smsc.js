#!/usr/bin/env node
// Minimal SMSC on node-smpp (npm package `smpp`) -- a benchmark peer.
//
//   node benchmarks/peers/npm_smsc.js --port 2775 [--host 127.0.0.1] [--no-cork]
//
// Behaviour (same as smpp34_smsc.py):
//   * accepts every bind (transmitter / receiver / transceiver), any credentials;
//   * answers each submit_sm with a decimal counter as message_id;
//   * when registered_delivery & 1, sends a delivery receipt deliver_sm on the
//     same session (esm_class 0x04, addresses swapped, Appendix B text plus the
//     TLVs receipted_message_id 0x001E and message_state 0x0427 = 2 DELIVERED);
//   * answers enquire_link and unbind (then closes the connection);
//   * answers any other request PDU with generic_nack / ESME_RINVCMDID via
//     pdu.response() where node-smpp knows the command.
// Prints `listening HOST:PORT` once accepting; exits 0 on SIGTERM / SIGINT.
//
// Speed notes: node-smpp writes every PDU with its own socket.write(). By
// default the socket is corked for the duration of one 'readable' burst and
// uncorked on the next tick, so all responses/receipts produced from one read
// go out in one writev (plain Node on session.socket, not a node-smpp option;
// it raised throughput ~1.5x here). --no-cork gives stock node-smpp writes.
'use strict';

// resolved from benchmarks/peers/node_modules whatever the working directory
let smpp;
try {
	smpp = require('smpp');
} catch (e) {
	console.error('cannot load the smpp package: run `npm install --prefix benchmarks/peers`');
	process.exit(2);
}

function parseArgs(argv) {
	const opts = {host: '127.0.0.1', port: 2775, systemId: 'NODESMSC', cork: true};
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
			return argv[++i];
		};
		if (a === '--port') opts.port = parseInt(val(), 10);
		else if (a === '--host') opts.host = val();
		else if (a === '--system-id') opts.systemId = val();
		else if (a === '--cork') opts.cork = true;
		else if (a === '--no-cork') opts.cork = false;
		else if (a === '-h' || a === '--help') {
			console.log('usage: node npm_smsc.js --port N [--host 127.0.0.1] [--system-id ID] [--no-cork]');
			process.exit(0);
		} else throw new Error(`unknown argument ${a}`);
	}
	if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
		throw new Error('--port must be 0..65535');
	}
	return opts;
}

let opts;
try {
	opts = parseArgs(process.argv.slice(2));
} catch (e) {
	console.error(e.message);
	process.exit(2);
}
const stats = {binds: 0, submits: 0, receiptsSent: 0, receiptsOk: 0, receiptsFailed: 0};
let nextId = 0;

// YYMMDDhhmm (local time), recomputed at most once a minute.
let stampMinute = -1;
let stamp = '';
function dateStamp() {
	const now = Date.now();
	const minute = Math.floor(now / 60000);
	if (minute !== stampMinute) {
		stampMinute = minute;
		const d = new Date(now);
		const p2 = (n) => (n < 10 ? '0' : '') + n;
		stamp = p2(d.getFullYear() % 100) + p2(d.getMonth() + 1) + p2(d.getDate()) +
			p2(d.getHours()) + p2(d.getMinutes());
	}
	return stamp;
}

// Raw text of an inbound short_message: node-smpp decodes it to {message: string}
// (or {udh, message}); fall back to a Buffer / string as-is.
function messageText(sm) {
	if (sm == null) return '';
	if (typeof sm === 'string') return sm;
	if (Buffer.isBuffer(sm)) return sm.toString('latin1');
	const m = sm.message;
	if (typeof m === 'string') return m;
	if (Buffer.isBuffer(m)) return m.toString('latin1');
	return '';
}

function onReceiptResp(resp) {
	if (resp.command_status === 0) stats.receiptsOk++;
	else stats.receiptsFailed++;
}

const server = smpp.createServer(function(session) {
	let canReceive = false;
	let bound = false;
	const socket = session.socket;
	socket.setNoDelay(true);

	if (opts.cork) {
		// Cork around each read burst; uncork on the next tick so everything the
		// handlers below queued during this burst is flushed as one writev.
		let corked = false;
		const uncork = () => { corked = false; socket.uncork(); };
		socket.prependListener('readable', () => {
			if (!corked) {
				corked = true;
				socket.cork();
				process.nextTick(uncork);
			}
		});
	}

	function onBind(pdu, receive) {
		if (bound) {
			session.send(pdu.response({command_status: smpp.ESME_RALYBND}));
			return;
		}
		bound = true;
		canReceive = receive;
		stats.binds++;
		session.send(pdu.response({system_id: opts.systemId}));
	}
	session.on('bind_transceiver', (pdu) => onBind(pdu, true));
	session.on('bind_receiver', (pdu) => onBind(pdu, true));
	session.on('bind_transmitter', (pdu) => onBind(pdu, false));

	session.on('submit_sm', (pdu) => {
		if (!bound) {
			session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
			return;
		}
		const msgId = String(++nextId);
		stats.submits++;
		session.send(pdu.response({message_id: msgId}));
		if ((pdu.registered_delivery & 1) && canReceive) {
			const ds = dateStamp();
			const text = messageText(pdu.short_message).slice(0, 20);
			const body = `id:${msgId} sub:001 dlvrd:001 submit date:${ds} done date:${ds} ` +
				`stat:DELIVRD err:000 text:${text}`;
			session.deliver_sm({
				source_addr_ton: pdu.dest_addr_ton,
				source_addr_npi: pdu.dest_addr_npi,
				source_addr: pdu.destination_addr,
				dest_addr_ton: pdu.source_addr_ton,
				dest_addr_npi: pdu.source_addr_npi,
				destination_addr: pdu.source_addr,
				esm_class: 0x04,
				data_coding: 0x00,
				// a Buffer bypasses node-smpp's GSM/Latin-1 auto-encoding
				short_message: Buffer.from(body, 'latin1'),
				receipted_message_id: msgId,
				message_state: 2, // DELIVERED
			}, onReceiptResp);
			stats.receiptsSent++;
		}
	});

	session.on('enquire_link', (pdu) => session.send(pdu.response()));
	session.on('unbind', (pdu) => {
		session.send(pdu.response());
		bound = false;
		session.close();
	});
	session.on('unknown', (pdu) => session.send(pdu.response()));
	// ESME-originated requests this minimal SMSC does not implement
	for (const cmd of ['query_sm', 'cancel_sm', 'replace_sm', 'submit_multi', 'data_sm']) {
		session.on(cmd, (pdu) => session.send(pdu.response({command_status: smpp.ESME_RINVCMDID})));
	}
	// Socket errors, and PDU decode errors: after one of those node-smpp stops
	// reading the session (its _busy flag stays set), so drop the connection.
	session.on('error', () => session.destroy());
});

server.on('error', (err) => {
	console.error(`server error: ${err.message}`);
	process.exit(1);
});

server.listen(opts.port, opts.host, () => {
	const addr = server.address();
	process.stdout.write(`listening ${addr.address}:${addr.port}\n`);
});

let stopping = false;
function shutdown() {
	if (stopping) return;
	stopping = true;
	server.close();
	for (const s of server.sessions.slice()) s.destroy();
	process.stderr.write(`stopped binds=${stats.binds} submits=${stats.submits} ` +
		`receipts_sent=${stats.receiptsSent} receipts_ok=${stats.receiptsOk} ` +
		`receipts_failed=${stats.receiptsFailed}\n`, () => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
