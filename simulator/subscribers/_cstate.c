/* TouchedStore in C: state.py's class, same API and results, without a Python object per
 * message on the hot path (mt_count then record_mt, once each per MT).
 *
 * Built by build_ctraits.py (optional: state.py falls back to its Python class without
 * it, or with SMSIM_NO_CSTATE=1 / SMSIM_NO_CTRAITS=1). state.py hands its dataclasses
 * (Counters, HistoryEntry, Aggregate) to `bind` once; the readers construct those.
 *
 * Layout, as in Python but in C arrays (PyMem_*, so tracemalloc sees them):
 *
 *   - rows: one 40-byte Row per touched subscriber (key, newest event, last times, the
 *     two counters) plus a byte of opt decision, in order of first touch; MSISDNs that
 *     are plain decimals (ASCII digits, no leading 0, < 19 characters: state._key) are
 *     found through an open-addressing table of row numbers (linear probing, at most
 *     3/4 full), any other string through a dict aside (other_rows, and other_keys back);
 *   - the history ring: `capacity` Events of 40 bytes plus a kind byte (bit 0 MO, bits
 *     1-7 the outcome code), grown up to the capacity, then event `seq` overwrites slot
 *     `seq % capacity`; each event links to its subscriber's previous one (prev, a seq);
 *   - a message id is its int when decimal (state._message_id), NO_ID for none, and
 *     otherwise the id string itself, owned, as a tagged pointer: -(intptr_t)ptr, which
 *     is < -2 for any object (user-space pointers are below 2^63 and not 0);
 *   - texts shared through a dict reset at TEXT_CACHE entries, as in Python; outcome
 *     stats counted in an array behind a dict (first counted first, as the Python dict
 *     keeps them), and a 7-bit code given to the first MAX_STATS stats an event keeps.
 *
 * Every fallible step of a recording (argument conversion, dict look-ups, allocation)
 * runs before the counters and the ring change, so an exception leaves the store
 * consistent (at most a new row with zero counts, after a MemoryError). Code a text's or a
 * stat's __hash__/__eq__ may run is never between finding a row or slot and using it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TEXT_CACHE 4096 /* state._TEXT_CACHE */
#define MAX_STATS 127   /* state._MAX_STATS */
#define NO_ID (-1)      /* state._NO_ID */
#define STAT_SCAN 8     /* stats compared by identity before the dict look-up */

_Static_assert(sizeof(uintptr_t) <= sizeof(int64_t), "a pointer must fit a message id");
#define ID_IS_TEXT(v) ((v) < -2)
#define ID_TEXT_OF(v) ((PyObject *)(uintptr_t)(-(v)))
#define ID_OF_TEXT(o) (-(int64_t)(uintptr_t)(o))

static PyObject *Counters_cls, *HistoryEntry_cls, *Aggregate_cls; /* bound by state.py */
static PyObject *str_mt, *str_mo;

typedef struct {
    int64_t key;             /* the MSISDN as an int; -1: in other_keys */
    int64_t head;            /* seq of the subscriber's newest event, -1: none */
    double last_mt, last_mo; /* NaN: never */
    uint32_t mt, mo;
} Row;

typedef struct {
    double time, done; /* done: an MT's outcome time, NaN: none (or an MO) */
    int64_t prev;      /* the same subscriber's previous event's seq, -1: none */
    int64_t id;        /* see ID_IS_TEXT */
    PyObject *text;    /* owned; shared through `texts` */
} Event;

typedef struct {
    PyObject *key; /* owned: the stat as first counted */
    long long count;
    int code; /* 0: none yet */
} Stat;

typedef struct {
    PyObject_HEAD
    Py_ssize_t capacity, per_subscriber;
    /* rows */
    Row *rows;
    int8_t *opted; /* -1 no decision here, 0 opted in, 1 opted out */
    Py_ssize_t n_rows, rows_alloc;
    uint32_t *table; /* row + 1 of a decimal key; 0: empty */
    size_t table_size; /* a power of two, or 0 */
    Py_ssize_t n_int;
    PyObject *other_rows; /* {address: row} for the keys that are not decimals */
    PyObject *other_keys; /* {row: address} */
    PyObject *opted_at;   /* {row: time} for the few who opted */
    /* the history ring */
    int64_t seq;
    Py_ssize_t slot;       /* where event `seq` goes */
    Py_ssize_t ring_alloc; /* events allocated, <= capacity */
    Event *ev;
    uint8_t *kind;
    PyObject *texts;
    int visit_ring; /* the ring holds an object the GC tracks: traverse it */
    /* outcomes */
    PyObject *stat_index; /* {stat: index into stats} */
    Stat *stats;
    Py_ssize_t n_stats, stats_alloc;
    PyObject *names[MAX_STATS + 1]; /* code -> stat (owned), from 1 */
    Py_ssize_t code_stat[MAX_STATS + 1]; /* code -> index into stats */
    int n_names; /* 1 + codes given */
    long long n_mt, n_mo, n_opted_out, opt_outs, opt_ins;
} StoreObject;

static PyTypeObject StoreType;

/* --- helpers ---------------------------------------------------------------------------- */

static int
parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *fname,
           const char *const *names, int npos, int nreq, int nall, PyObject **out)
{
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)",
                     fname, npos, nargs);
        return -1;
    }
    for (int i = 0; i < nall; i++) out[i] = i < nargs ? args[i] : NULL;
    if (kwnames) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
            int j = 0;
            while (j < nall && PyUnicode_CompareWithASCIIString(kw, names[j]) != 0) j++;
            if (j == nall) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                             fname, kw);
                return -1;
            }
            if (out[j]) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                             fname, names[j]);
                return -1;
            }
            out[j] = args[nargs + k];
        }
    }
    for (int i = 0; i < nreq; i++)
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                         names[i]);
            return -1;
        }
    return 0;
}

static inline int
is_none(PyObject *o)
{
    return o == NULL || o == Py_None;
}

static inline int
as_double(PyObject *o, double *out)
{
    if (PyFloat_CheckExact(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 0;
    }
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    *out = d;
    return 0;
}

static inline PyObject *
float_or_none(double d)
{
    if (isnan(d)) Py_RETURN_NONE;
    return PyFloat_FromDouble(d);
}

/* A string's ASCII decimal digits as an int64: 1 with *out set when `o` is a str of
 * 1..max_len ASCII digits (and, unless zero_ok, no leading 0 at all; with zero_ok only
 * "0" itself may start with one); 0 when it is another str; -1 (TypeError) otherwise. */
static inline int
decimal(PyObject *o, int64_t *out, int zero_ok, const char *what)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(o) < 0) return -1;
#endif
    if (!PyUnicode_IS_ASCII(o)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    if (n < 1 || n >= 19) return 0;
    const unsigned char *s = PyUnicode_1BYTE_DATA(o);
    if (s[0] == '0' && !(zero_ok && n == 1)) return 0;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned d = (unsigned)s[i] - '0';
        if (d > 9) return 0;
        v = v * 10 + (int64_t)d;
    }
    *out = v;
    return 1;
}

static PyObject *
decimal_str(int64_t v)
{
    char buf[24];
    int n = 0;
    uint64_t u = (uint64_t)v;
    do {
        buf[sizeof buf - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    PyObject *s = PyUnicode_New(n, 127);
    if (s) memcpy(PyUnicode_1BYTE_DATA(s), buf + sizeof buf - n, (size_t)n);
    return s;
}

static int
grow(void **p, Py_ssize_t *alloc, Py_ssize_t need, size_t size, Py_ssize_t most)
{
    if (need <= *alloc) return 0;
    Py_ssize_t n = *alloc < 16 ? 16 : *alloc * 2;
    if (n < need) n = need;
    if (most > 0 && n > most) n = most;
    if ((size_t)n > PY_SSIZE_T_MAX / size) {
        PyErr_NoMemory();
        return -1;
    }
    void *q = PyMem_Realloc(*p, (size_t)n * size);
    if (!q) {
        PyErr_NoMemory();
        return -1;
    }
    *p = q;
    *alloc = n;
    return 0;
}

/* --- rows --------------------------------------------------------------------------------- */

static inline size_t
hash_slot(int64_t key, size_t size)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 32) & (size - 1);
}

typedef struct {
    int is_int;
    int64_t key;
    PyObject *address;
    Py_ssize_t row; /* -1: untouched */
    size_t slot;    /* is_int and untouched: the empty slot where the key would go */
} Where;

/* Finds the row of `msisdn` (w->row -1 when untouched); -1 on error. */
static inline int
locate(StoreObject *s, PyObject *msisdn, Where *w)
{
    int r = decimal(msisdn, &w->key, 0, "msisdn");
    if (r < 0) return -1;
    w->address = msisdn;
    w->row = -1;
    w->is_int = r;
    if (r) {
        size_t size = s->table_size;
        if (!size) {
            w->slot = 0;
            return 0;
        }
        size_t i = hash_slot(w->key, size);
        uint32_t *table = s->table;
        for (;;) {
            uint32_t v = table[i];
            if (!v) break;
            if (s->rows[v - 1].key == w->key) {
                w->row = (Py_ssize_t)v - 1;
                return 0;
            }
            i = (i + 1) & (size - 1);
        }
        w->slot = i;
        return 0;
    }
    PyObject *row = PyDict_GetItemWithError(s->other_rows, msisdn);
    if (row) {
        w->row = PyLong_AsSsize_t(row);
        return w->row < 0 ? -1 : 0;
    }
    return PyErr_Occurred() ? -1 : 0;
}

static int
rehash(StoreObject *s, size_t size)
{
    uint32_t *table = PyMem_Calloc(size, sizeof(uint32_t));
    if (!table) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t r = 0; r < s->n_rows; r++) {
        if (s->rows[r].key < 0) continue;
        size_t i = hash_slot(s->rows[r].key, size);
        while (table[i]) i = (i + 1) & (size - 1);
        table[i] = (uint32_t)(r + 1);
    }
    PyMem_Free(s->table);
    s->table = table;
    s->table_size = size;
    return 0;
}

/* Adds the row located by `w` (untouched); its number, or -1 on error. */
static Py_ssize_t
add_row(StoreObject *s, Where *w)
{
    Py_ssize_t row = s->n_rows;
    if (row >= (Py_ssize_t)UINT32_MAX - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many touched subscribers");
        return -1;
    }
    if (row == s->rows_alloc) {
        /* rows and opted, both to the same length (opted may end up longer) */
        Py_ssize_t alloc = s->rows_alloc, alloc2 = s->rows_alloc;
        if (grow((void **)&s->rows, &alloc, row + 1, sizeof(Row), 0) < 0) return -1;
        if (grow((void **)&s->opted, &alloc2, alloc, 1, 0) < 0) return -1;
        s->rows_alloc = alloc;
    }
    if (w->is_int) {
        if ((size_t)(s->n_int + 1) * 4 > s->table_size * 3) {
            if (rehash(s, s->table_size ? s->table_size * 2 : 64) < 0) return -1;
            size_t i = hash_slot(w->key, s->table_size);
            while (s->table[i]) i = (i + 1) & (s->table_size - 1);
            w->slot = i;
        }
        s->table[w->slot] = (uint32_t)(row + 1);
        s->n_int++;
    } else {
        PyObject *n = PyLong_FromSsize_t(row);
        if (!n) return -1;
        if (PyDict_SetItem(s->other_keys, n, w->address) < 0) {
            Py_DECREF(n);
            return -1;
        }
        if (PyDict_SetItem(s->other_rows, w->address, n) < 0) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            if (PyDict_DelItem(s->other_keys, n) < 0) PyErr_Clear();
            PyErr_Restore(type, value, tb);
            Py_DECREF(n);
            return -1;
        }
        Py_DECREF(n);
        if (s->n_rows != row) { /* a str subclass's __hash__ recorded meanwhile */
            PyErr_SetString(PyExc_RuntimeError, "TouchedStore changed while adding a row");
            return -1;
        }
    }
    Row *r = &s->rows[row];
    r->key = w->is_int ? w->key : -1;
    r->head = -1;
    r->last_mt = r->last_mo = NAN;
    r->mt = r->mo = 0;
    s->opted[row] = -1;
    s->n_rows = row + 1;
    w->row = row;
    return row;
}

/* add_row for `w`, found untouched when the store had `rows_then` rows: located again if
 * rows were added since (a text's or a stat's __eq__ may have run code that records),
 * so the key is neither added twice nor put in a stale slot. */
static Py_ssize_t
add_row_again(StoreObject *s, Where *w, Py_ssize_t rows_then)
{
    if (s->n_rows != rows_then) {
        if (locate(s, w->address, w) < 0) return -1;
        if (w->row >= 0) return w->row;
    }
    return add_row(s, w);
}

/* --- outcomes, texts, the ring ------------------------------------------------------------ */

/* The index of `stat` in stats, added with count 0 when new; -1 on error. */
static Py_ssize_t
stat_of(StoreObject *s, PyObject *stat)
{
    Py_ssize_t scan = s->n_stats < STAT_SCAN ? s->n_stats : STAT_SCAN;
    for (Py_ssize_t i = 0; i < scan; i++)
        if (s->stats[i].key == stat) return i; /* the dict would find that entry too */
    PyObject *found = PyDict_GetItemWithError(s->stat_index, stat);
    if (found) return PyLong_AsSsize_t(found);
    if (PyErr_Occurred()) return -1;
    Py_ssize_t i = s->n_stats;
    if (grow((void **)&s->stats, &s->stats_alloc, i + 1, sizeof(Stat), 0) < 0) return -1;
    PyObject *n = PyLong_FromSsize_t(i);
    if (!n) return -1;
    int r = PyDict_SetItem(s->stat_index, stat, n);
    Py_DECREF(n);
    if (r < 0) return -1;
    Py_INCREF(stat);
    s->stats[i].key = stat;
    s->stats[i].count = 0;
    s->stats[i].code = 0;
    s->n_stats = i + 1;
    return i;
}

/* state.TouchedStore._code: the 7-bit code of stats[i] (given to `stat` now if it has
 * none), 0 once the table is full: not kept. */
static int
code_of(StoreObject *s, Py_ssize_t i, PyObject *stat)
{
    Stat *st = &s->stats[i];
    if (st->code) return st->code;
    if (s->n_names > MAX_STATS) return 0;
    int code = s->n_names++;
    Py_INCREF(stat);
    s->names[code] = stat;
    s->code_stat[code] = i;
    st->code = code;
    return code;
}

/* The text an event keeps: the equal one already shared, else `text` (new reference). */
static PyObject *
share_text(StoreObject *s, PyObject *text)
{
    PyObject *shared = PyDict_GetItemWithError(s->texts, text);
    if (!shared) {
        if (PyErr_Occurred()) return NULL;
        if (PyDict_GET_SIZE(s->texts) >= TEXT_CACHE) PyDict_Clear(s->texts);
        if (PyDict_SetItem(s->texts, text, text) < 0) return NULL;
        shared = text;
    }
    Py_INCREF(shared);
    return shared;
}

/* Room for event `seq`: the ring's arrays grown while it has not wrapped; -1 on error.
 * Called last before push, with no Python code in between. */
static inline int
ring_room(StoreObject *s)
{
    if (s->seq < s->ring_alloc || s->ring_alloc == s->capacity) return 0;
    Py_ssize_t a1 = s->ring_alloc, a2 = s->ring_alloc;
    if (grow((void **)&s->ev, &a1, (Py_ssize_t)s->seq + 1, sizeof(Event), s->capacity) < 0)
        return -1;
    if (grow((void **)&s->kind, &a2, a1, 1, s->capacity) < 0) return -1;
    s->ring_alloc = a1;
    return 0;
}

/* Appends event `seq` for row `r` (capacity > 0, ring_room done); steals `text`; takes
 * a reference to a text message id. Cannot fail. */
static inline void
push(StoreObject *s, Row *r, double time, int kind, PyObject *text, int64_t id, double done)
{
    int64_t seq = s->seq++;
    Py_ssize_t slot = s->slot;
    s->slot = slot + 1 == s->capacity ? 0 : slot + 1;
    Event *e = &s->ev[slot];
    PyObject *old_text = NULL, *old_id = NULL;
    if (seq >= s->capacity) {
        old_text = e->text;
        if (ID_IS_TEXT(e->id)) old_id = ID_TEXT_OF(e->id);
    }
    e->time = time;
    e->done = done;
    e->prev = r->head;
    e->id = id;
    e->text = text;
    s->kind[slot] = (uint8_t)kind;
    r->head = seq;
    if (!s->visit_ring && PyObject_IS_GC(text)) s->visit_ring = 1;
    if (ID_IS_TEXT(id)) {
        PyObject *o = ID_TEXT_OF(id);
        Py_INCREF(o);
        if (!s->visit_ring && PyObject_IS_GC(o)) s->visit_ring = 1;
    }
    /* last: a destructor may run code that uses the store */
    Py_XDECREF(old_text);
    Py_XDECREF(old_id);
}

static PyObject *
cleared(void)
{
    PyErr_SetString(PyExc_ReferenceError, "this TouchedStore was cleared by the garbage collector");
    return NULL;
}
#define READY(s) \
    if (!(s)->texts) return cleared()

/* --- recording ---------------------------------------------------------------------------- */

static const char *const record_mt_kw[] = {"msisdn",  "time",      "text", "message_id",
                                           "outcome", "done_time", NULL};

static PyObject *
Store_record_mt(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[6];
    if (parse_args(args, nargs, kwnames, "record_mt", record_mt_kw, 6, 3, 6, a) < 0)
        return NULL;
    READY(s);
    Where w;
    double time, done = NAN;
    if (locate(s, a[0], &w) < 0 || as_double(a[1], &time) < 0) return NULL;
    Py_ssize_t rows_then = s->n_rows;
    Py_ssize_t stat = -1;
    int code = 0;
    if (!is_none(a[4])) {
        if ((stat = stat_of(s, a[4])) < 0) return NULL;
        code = code_of(s, stat, a[4]);
        if (code && !is_none(a[5]) && as_double(a[5], &done) < 0) return NULL;
    }
    int64_t id = NO_ID;
    PyObject *text = NULL;
    if (s->capacity) {
        if (!is_none(a[3])) {
            int r = decimal(a[3], &id, 1, "message_id");
            if (r < 0) return NULL;
            if (!r) id = ID_OF_TEXT(a[3]);
        }
        if (!(text = share_text(s, a[2]))) return NULL;
    }
    if (w.row < 0) {
        if (add_row_again(s, &w, rows_then) < 0) goto fail;
    } else if (s->rows[w.row].mt == UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "MT counter overflow");
        goto fail;
    }
    if (s->capacity && ring_room(s) < 0) goto fail; /* last: nothing after runs Python */
    Row *r = &s->rows[w.row];
    uint32_t before = r->mt;
    r->mt = before + 1;
    r->last_mt = time;
    s->n_mt++;
    if (stat >= 0) s->stats[stat].count++;
    if (s->capacity) push(s, r, time, code << 1, text, id, done);
    return PyLong_FromUnsignedLong(before);
fail:
    Py_XDECREF(text);
    return NULL;
}

static PyObject *
Store_mt_count(StoreObject *s, PyObject *msisdn)
{
    READY(s);
    Where w;
    if (locate(s, msisdn, &w) < 0) return NULL;
    return PyLong_FromUnsignedLong(w.row < 0 ? 0 : s->rows[w.row].mt);
}

static const char *const record_mo_kw[] = {"msisdn", "time", "text", NULL};

static PyObject *
Store_record_mo(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[3];
    if (parse_args(args, nargs, kwnames, "record_mo", record_mo_kw, 3, 3, 3, a) < 0)
        return NULL;
    READY(s);
    Where w;
    double time;
    if (locate(s, a[0], &w) < 0 || as_double(a[1], &time) < 0) return NULL;
    Py_ssize_t rows_then = s->n_rows;
    PyObject *text = NULL;
    if (s->capacity && !(text = share_text(s, a[2]))) return NULL;
    if (w.row < 0) {
        if (add_row_again(s, &w, rows_then) < 0) goto fail;
    } else if (s->rows[w.row].mo == UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "MO counter overflow");
        goto fail;
    }
    if (s->capacity && ring_room(s) < 0) goto fail;
    Row *r = &s->rows[w.row];
    r->mo++;
    r->last_mo = time;
    s->n_mo++;
    if (s->capacity) push(s, r, time, 1, text, NO_ID, NAN);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(text);
    return NULL;
}

static const char *const record_outcome_kw[] = {"msisdn", "stat", "done_time", NULL};

static PyObject *
Store_record_outcome(StoreObject *s, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames)
{
    PyObject *a[3];
    if (parse_args(args, nargs, kwnames, "record_outcome", record_outcome_kw, 3, 2, 3, a) < 0)
        return NULL;
    READY(s);
    Py_ssize_t stat = stat_of(s, a[1]);
    if (stat < 0) return NULL;
    s->stats[stat].count++;
    Where w;
    if (locate(s, a[0], &w) < 0) return NULL;
    if (w.row < 0 || !s->capacity) Py_RETURN_NONE;
    int code = code_of(s, stat, a[1]);
    if (!code) Py_RETURN_NONE;
    int64_t oldest = s->seq - s->capacity, seq = s->rows[w.row].head;
    for (Py_ssize_t i = 0; i < s->per_subscriber; i++) {
        if (seq < 0 || seq < oldest) break;
        Py_ssize_t slot = (Py_ssize_t)(seq % s->capacity);
        if (s->kind[slot] == 0) { /* an MT without an outcome */
            s->kind[slot] = (uint8_t)(code << 1);
            if (!is_none(a[2]) && as_double(a[2], &s->ev[slot].done) < 0) return NULL;
            break;
        }
        seq = s->ev[slot].prev;
    }
    Py_RETURN_NONE;
}

/* Is event `e`'s message id `message_id`? 1, 0, or -1 on error. */
static int
same_id(const Event *e, PyObject *message_id)
{
    if (ID_IS_TEXT(e->id)) return PyObject_RichCompareBool(ID_TEXT_OF(e->id), message_id, Py_EQ);
    if (PyUnicode_Check(message_id)) {
        /* str(id) == message_id, the canonical spelling: what decimal() accepts */
        int64_t v;
        int r = decimal(message_id, &v, 1, "message_id");
        return r <= 0 ? r : v == e->id;
    }
    PyObject *str = decimal_str(e->id);
    if (!str) return -1;
    int r = PyObject_RichCompareBool(str, message_id, Py_EQ);
    Py_DECREF(str);
    return r;
}

static const char *const amend_mt_kw[] = {"msisdn",  "message_id", "text",
                                          "outcome", "done_time",  NULL};

static PyObject *
Store_amend_mt(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[5];
    if (parse_args(args, nargs, kwnames, "amend_mt", amend_mt_kw, 2, 2, 5, a) < 0)
        return NULL;
    READY(s);
    Where w;
    if (locate(s, a[0], &w) < 0) return NULL;
    if (w.row < 0 || !s->capacity) Py_RETURN_FALSE;
    int64_t oldest = s->seq - s->capacity, seq = s->rows[w.row].head;
    Py_ssize_t slot = -1;
    for (Py_ssize_t i = 0; i < s->per_subscriber; i++) {
        if (seq < 0 || seq < oldest) break;
        Py_ssize_t at = (Py_ssize_t)(seq % s->capacity);
        const Event *e = &s->ev[at];
        if (!(s->kind[at] & 1) && e->id != NO_ID) {
            int r = same_id(e, a[1]);
            if (r < 0) return NULL;
            if (r) {
                slot = at;
                break;
            }
        }
        seq = e->prev;
    }
    if (slot < 0) Py_RETURN_FALSE;
    if (!is_none(a[2])) {
        PyObject *text = share_text(s, a[2]);
        if (!text) return NULL;
        PyObject *old = s->ev[slot].text;
        s->ev[slot].text = text;
        if (!s->visit_ring && PyObject_IS_GC(text)) s->visit_ring = 1;
        Py_DECREF(old);
    }
    if (!is_none(a[3])) {
        int old = s->kind[slot] >> 1;
        Py_ssize_t stat = stat_of(s, a[3]);
        if (stat < 0) return NULL;
        if (old && s->stats[s->code_stat[old]].count) s->stats[s->code_stat[old]].count--;
        s->stats[stat].count++;
        s->kind[slot] = (uint8_t)(code_of(s, stat, a[3]) << 1);
    }
    if (!is_none(a[4]) && as_double(a[4], &s->ev[slot].done) < 0) return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
set_opted(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
          const char *fname, int value)
{
    static const char *const kw[] = {"msisdn", "time", NULL};
    PyObject *a[2];
    if (parse_args(args, nargs, kwnames, fname, kw, 2, 2, 2, a) < 0) return NULL;
    READY(s);
    Where w;
    if (locate(s, a[0], &w) < 0) return NULL;
    if (w.row < 0 && add_row(s, &w) < 0) return NULL;
    PyObject *row = PyLong_FromSsize_t(w.row);
    if (!row) return NULL;
    int r = PyDict_SetItem(s->opted_at, row, a[1]);
    Py_DECREF(row);
    if (r < 0) return NULL;
    int before = s->opted[w.row];
    s->opted[w.row] = (int8_t)value;
    s->n_opted_out += (value == 1) - (before == 1);
    if (value)
        s->opt_outs++;
    else
        s->opt_ins++;
    Py_RETURN_NONE;
}

static PyObject *
Store_opt_out(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return set_opted(s, args, nargs, kwnames, "opt_out", 1);
}

static PyObject *
Store_opt_in(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return set_opted(s, args, nargs, kwnames, "opt_in", 0);
}

/* --- reading ------------------------------------------------------------------------------- */

static PyObject *
Store_is_opted_out(StoreObject *s, PyObject *msisdn)
{
    READY(s);
    Where w;
    if (locate(s, msisdn, &w) < 0) return NULL;
    if (w.row < 0 || s->opted[w.row] < 0) Py_RETURN_NONE;
    return PyBool_FromLong(s->opted[w.row] == 1);
}

static PyObject *
call_n(PyObject *cls, PyObject **items, Py_ssize_t n)
{
    PyObject *r = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!items[i]) goto done;
    r = PyObject_Vectorcall(cls, items, (size_t)n, NULL);
done:
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
    return r;
}

static PyObject *
Store_counters(StoreObject *s, PyObject *msisdn)
{
    READY(s);
    Where w;
    if (locate(s, msisdn, &w) < 0) return NULL;
    if (w.row < 0) Py_RETURN_NONE;
    const Row *r = &s->rows[w.row];
    int opted = s->opted[w.row];
    PyObject *at = NULL;
    PyObject *row = PyLong_FromSsize_t(w.row);
    if (row) {
        at = PyDict_GetItemWithError(s->opted_at, row);
        Py_DECREF(row);
        if (at)
            Py_INCREF(at);
        else if (!PyErr_Occurred())
            at = Py_NewRef(Py_None);
    }
    PyObject *items[6] = {
        PyLong_FromUnsignedLong(r->mt),
        PyLong_FromUnsignedLong(r->mo),
        float_or_none(r->last_mt),
        float_or_none(r->last_mo),
        opted < 0 ? Py_NewRef(Py_None) : PyBool_FromLong(opted == 1),
        at,
    };
    return call_n(Counters_cls, items, 6);
}

static const char *const history_kw[] = {"msisdn", "limit", NULL};

static PyObject *
Store_history(StoreObject *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (parse_args(args, nargs, kwnames, "history", history_kw, 2, 1, 2, a) < 0) return NULL;
    READY(s);
    Py_ssize_t limit = 8;
    if (a[1] && (limit = PyNumber_AsSsize_t(a[1], NULL)) == -1 && PyErr_Occurred())
        return NULL;
    Where w;
    if (locate(s, a[0], &w) < 0) return NULL;
    PyObject *out = PyList_New(0);
    if (!out || w.row < 0 || !s->capacity) return out;
    if (limit > s->per_subscriber) limit = s->per_subscriber;
    int64_t oldest = s->seq - s->capacity, seq = s->rows[w.row].head;
    for (Py_ssize_t i = 0; i < limit; i++) {
        if (seq < 0 || seq < oldest) break;
        Py_ssize_t slot = (Py_ssize_t)(seq % s->capacity);
        const Event *e = &s->ev[slot];
        int kind = s->kind[slot];
        int64_t prev = e->prev; /* read now: the constructor below runs Python code */
        PyObject *mid;
        if (ID_IS_TEXT(e->id))
            mid = Py_NewRef(ID_TEXT_OF(e->id));
        else if (e->id < 0)
            mid = Py_NewRef(Py_None);
        else
            mid = decimal_str(e->id);
        PyObject *items[6] = {
            Py_NewRef(kind & 1 ? str_mo : str_mt),
            PyFloat_FromDouble(e->time),
            Py_NewRef(e->text),
            mid,
            Py_NewRef(kind >> 1 ? s->names[kind >> 1] : Py_None),
            float_or_none(e->done),
        };
        PyObject *entry = call_n(HistoryEntry_cls, items, 6);
        if (!entry || PyList_Append(out, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(entry);
        seq = prev;
        oldest = s->seq - s->capacity;
    }
    if (PyList_Reverse(out) < 0) Py_CLEAR(out);
    return out;
}

static PyObject *
Store_aggregate(StoreObject *s, PyObject *Py_UNUSED(ignored))
{
    READY(s);
    PyObject *outcomes = PyDict_New();
    if (!outcomes) return NULL;
    for (Py_ssize_t i = 0; i < s->n_stats; i++) {
        PyObject *n = PyLong_FromLongLong(s->stats[i].count);
        if (!n || PyDict_SetItem(outcomes, s->stats[i].key, n) < 0) {
            Py_XDECREF(n);
            Py_DECREF(outcomes);
            return NULL;
        }
        Py_DECREF(n);
    }
    int64_t events = s->seq < s->capacity ? s->seq : s->capacity;
    PyObject *items[9] = {
        PyLong_FromSsize_t(s->n_rows),  PyLong_FromLongLong(s->n_mt),
        PyLong_FromLongLong(s->n_mo),   outcomes,
        PyLong_FromLongLong(s->n_opted_out), PyLong_FromLongLong(s->opt_outs),
        PyLong_FromLongLong(s->opt_ins), PyLong_FromLongLong(events),
        PyLong_FromSsize_t(s->capacity),
    };
    return call_n(Aggregate_cls, items, 9);
}

static PyObject *
Store_sizeof(StoreObject *s, PyObject *Py_UNUSED(ignored))
{
    size_t n = (size_t)Py_TYPE(s)->tp_basicsize;
    n += (size_t)s->rows_alloc * (sizeof(Row) + 1) + s->table_size * sizeof(uint32_t);
    n += (size_t)s->ring_alloc * (sizeof(Event) + 1) + (size_t)s->stats_alloc * sizeof(Stat);
    return PyLong_FromSize_t(n);
}

static PyObject *
Store_get_per_subscriber(StoreObject *s, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(s->per_subscriber);
}

static PyObject *
Store_get_opt_decisions(StoreObject *s, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(s->opt_outs + s->opt_ins);
}

static Py_ssize_t
Store_len(StoreObject *s)
{
    return s->n_rows;
}

static int
Store_contains(StoreObject *s, PyObject *msisdn)
{
    if (!PyUnicode_Check(msisdn)) return 0;
    if (!s->texts) {
        cleared();
        return -1;
    }
    Where w;
    if (locate(s, msisdn, &w) < 0) return -1;
    return w.row >= 0;
}

/* --- iteration ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    StoreObject *store; /* NULL once exhausted */
    Py_ssize_t row;
} IterObject;

static PyTypeObject IterType;

static PyObject *
Store_iter(StoreObject *s)
{
    IterObject *it = PyObject_GC_New(IterObject, &IterType);
    if (!it) return NULL;
    Py_INCREF(s);
    it->store = s;
    it->row = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *
Iter_next(IterObject *it)
{
    StoreObject *s = it->store;
    if (!s) return NULL;
    if (it->row >= s->n_rows || !s->texts) {
        Py_CLEAR(it->store);
        return NULL;
    }
    Py_ssize_t row = it->row++;
    if (s->rows[row].key >= 0) return decimal_str(s->rows[row].key);
    PyObject *n = PyLong_FromSsize_t(row);
    if (!n) return NULL;
    PyObject *address = PyDict_GetItemWithError(s->other_keys, n);
    Py_DECREF(n);
    if (!address) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "TouchedStore: row without key");
        return NULL;
    }
    return Py_NewRef(address);
}

static int
Iter_traverse(IterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(it->store);
    return 0;
}

static void
Iter_dealloc(IterObject *it)
{
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->store);
    PyObject_GC_Del(it);
}

static PyTypeObject IterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simulator.subscribers._cstate.TouchedStoreIterator",
    .tp_basicsize = sizeof(IterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)Iter_dealloc,
    .tp_traverse = (traverseproc)Iter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Iter_next,
};

/* --- life ------------------------------------------------------------------------------------ */

static PyObject *
Store_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"history_size", "per_subscriber", NULL};
    Py_ssize_t history_size = 1000000, per_subscriber = 8;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nn:TouchedStore", kw, &history_size,
                                     &per_subscriber))
        return NULL;
    if (history_size < 0 || per_subscriber < 0) {
        PyErr_SetString(PyExc_ValueError, "history_size and per_subscriber must be >= 0");
        return NULL;
    }
    if (!Counters_cls) {
        PyErr_SetString(PyExc_RuntimeError, "_cstate.bind() was not called (state.py does)");
        return NULL;
    }
    StoreObject *s = (StoreObject *)type->tp_alloc(type, 0); /* zeroed */
    if (!s) return NULL;
    s->capacity = history_size;
    s->per_subscriber = per_subscriber;
    s->n_names = 1;
    if (!(s->other_rows = PyDict_New()) || !(s->other_keys = PyDict_New()) ||
        !(s->opted_at = PyDict_New()) || !(s->stat_index = PyDict_New()) ||
        !(s->texts = PyDict_New())) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

static int
Store_traverse(StoreObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->other_rows);
    Py_VISIT(s->other_keys);
    Py_VISIT(s->opted_at);
    Py_VISIT(s->stat_index);
    Py_VISIT(s->texts);
    for (Py_ssize_t i = 0; i < s->n_stats; i++) Py_VISIT(s->stats[i].key);
    for (int c = 1; c < s->n_names; c++) Py_VISIT(s->names[c]);
    /* Texts and ids are str as a rule, which the GC does not track: visiting a million of
     * them would find nothing. Only once the ring got an object the GC tracks. */
    if (s->visit_ring) {
        int64_t n = s->seq < s->capacity ? s->seq : s->capacity;
        for (int64_t i = 0; i < n; i++) {
            Py_VISIT(s->ev[i].text);
            if (ID_IS_TEXT(s->ev[i].id)) Py_VISIT(ID_TEXT_OF(s->ev[i].id));
        }
    }
    return 0;
}

/* Empties the store (every reference released, every array freed); the methods then
 * raise ReferenceError. The struct is reset before any reference goes, since a
 * destructor may run code that reaches the store. */
static int
Store_clear(StoreObject *s)
{
    Event *ev = s->ev;
    int64_t n_events = s->seq < s->capacity ? s->seq : s->capacity;
    Stat *stats = s->stats;
    Py_ssize_t n_stats = s->n_stats;
    PyObject *names[MAX_STATS + 1];
    int n_names = s->n_names;
    memcpy(names, s->names, sizeof names);
    PyObject *dicts[5] = {s->other_rows, s->other_keys, s->opted_at, s->stat_index, s->texts};
    PyMem_Free(s->rows);
    PyMem_Free(s->opted);
    PyMem_Free(s->table);
    PyMem_Free(s->kind);
    s->rows = NULL;
    s->opted = NULL;
    s->table = NULL;
    s->kind = NULL;
    s->ev = NULL;
    s->stats = NULL;
    s->n_rows = s->rows_alloc = s->n_int = s->ring_alloc = s->slot = 0;
    s->n_stats = s->stats_alloc = 0;
    s->table_size = 0;
    s->seq = 0;
    s->n_names = 1;
    s->other_rows = s->other_keys = s->opted_at = s->stat_index = s->texts = NULL;
    for (int64_t i = 0; i < n_events; i++) {
        Py_DECREF(ev[i].text);
        if (ID_IS_TEXT(ev[i].id)) Py_DECREF(ID_TEXT_OF(ev[i].id));
    }
    PyMem_Free(ev);
    for (Py_ssize_t i = 0; i < n_stats; i++) Py_DECREF(stats[i].key);
    PyMem_Free(stats);
    for (int c = 1; c < n_names; c++) Py_DECREF(names[c]);
    for (int i = 0; i < 5; i++) Py_XDECREF(dicts[i]);
    return 0;
}

static void
Store_dealloc(StoreObject *s)
{
    PyObject_GC_UnTrack(s);
    Store_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

#define FAST (METH_FASTCALL | METH_KEYWORDS)
static PyMethodDef Store_methods[] = {
    {"record_mt", (PyCFunction)(void (*)(void))Store_record_mt, FAST,
     "record_mt(msisdn, time, text, message_id=None, outcome=None, done_time=None) -> int"},
    {"mt_count", (PyCFunction)Store_mt_count, METH_O, "mt_count(msisdn) -> int"},
    {"record_mo", (PyCFunction)(void (*)(void))Store_record_mo, FAST,
     "record_mo(msisdn, time, text)"},
    {"record_outcome", (PyCFunction)(void (*)(void))Store_record_outcome, FAST,
     "record_outcome(msisdn, stat, done_time=None)"},
    {"amend_mt", (PyCFunction)(void (*)(void))Store_amend_mt, FAST,
     "amend_mt(msisdn, message_id, *, text=None, outcome=None, done_time=None) -> bool"},
    {"opt_out", (PyCFunction)(void (*)(void))Store_opt_out, FAST, "opt_out(msisdn, time)"},
    {"opt_in", (PyCFunction)(void (*)(void))Store_opt_in, FAST, "opt_in(msisdn, time)"},
    {"is_opted_out", (PyCFunction)Store_is_opted_out, METH_O, "is_opted_out(msisdn)"},
    {"counters", (PyCFunction)Store_counters, METH_O, "counters(msisdn) -> Counters | None"},
    {"history", (PyCFunction)(void (*)(void))Store_history, FAST,
     "history(msisdn, limit=8) -> list[HistoryEntry]"},
    {"aggregate", (PyCFunction)Store_aggregate, METH_NOARGS, "aggregate() -> Aggregate"},
    {"__sizeof__", (PyCFunction)Store_sizeof, METH_NOARGS, "bytes, C arrays included"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Store_getset[] = {
    {"per_subscriber", (getter)Store_get_per_subscriber, NULL,
     "Most events history returns for one subscriber.", NULL},
    {"opt_decisions", (getter)Store_get_opt_decisions, NULL,
     "Opt-outs and opt-ins recorded.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Store_as_sequence = {
    .sq_length = (lenfunc)Store_len,
    .sq_contains = (objobjproc)Store_contains,
};

static PyTypeObject StoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simulator.subscribers._cstate.TouchedStore",
    .tp_doc = PyDoc_STR("state.TouchedStore in C (see _cstate.c)."),
    .tp_basicsize = sizeof(StoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = Store_new,
    .tp_dealloc = (destructor)Store_dealloc,
    .tp_traverse = (traverseproc)Store_traverse,
    .tp_clear = (inquiry)Store_clear,
    .tp_iter = (getiterfunc)Store_iter,
    .tp_methods = Store_methods,
    .tp_getset = Store_getset,
    .tp_as_sequence = &Store_as_sequence,
};

/* --- module ---------------------------------------------------------------------------------- */

static PyObject *
bind(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *counters, *entry, *aggregate;
    if (!PyArg_ParseTuple(args, "OOO:bind", &counters, &entry, &aggregate)) return NULL;
    Py_INCREF(counters);
    Py_INCREF(entry);
    Py_INCREF(aggregate);
    Py_XSETREF(Counters_cls, counters);
    Py_XSETREF(HistoryEntry_cls, entry);
    Py_XSETREF(Aggregate_cls, aggregate);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(Counters, HistoryEntry, Aggregate): the classes the readers return."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cstate_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "simulator.subscribers._cstate",
    .m_doc = "TouchedStore in C (optional; state.py falls back to Python).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cstate(void)
{
    if (PyType_Ready(&StoreType) < 0 || PyType_Ready(&IterType) < 0) return NULL;
    if (!str_mt && !(str_mt = PyUnicode_InternFromString("mt"))) return NULL;
    if (!str_mo && !(str_mo = PyUnicode_InternFromString("mo"))) return NULL;
    PyObject *m = PyModule_Create(&cstate_module);
    if (!m) return NULL;
    Py_INCREF(&StoreType);
    if (PyModule_AddObject(m, "TouchedStore", (PyObject *)&StoreType) < 0) {
        Py_DECREF(&StoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
