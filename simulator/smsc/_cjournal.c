/* The journal's record buffer: each record marshalled as the hook hands it over.
 *
 * Why: kept as Python values until the journal thread marshalled them, a record's
 * values stayed alive for a whole batch (~0.1 s, thousands of messages) and were then
 * walked again cold by marshal (its reference table included) and freed by the thread.
 * That cost the SMSC more than the instructions said: memory traffic. Here each value
 * is written at once, while it is in cache, in marshal's own encoding, into one byte
 * buffer the journal keeps and reuses; nothing of the record stays alive.
 *
 * The buffer is a marshal list whose items are written one by one: ``take`` patches
 * its length into the head and hands over the bytes, which ``marshal.loads`` reads as
 * the flat list of values of journal format 3 (``journal_files``). No value carries
 * marshal's reference flag, so items are independent: a value of another type (an
 * MO's parts, an enum member) is marshalled by the ``fallback`` callable given at
 * construction, at a version without references (2), and its bytes appended.
 *
 * ``add(*values)`` is one record: the fallback (Python code, which may let another
 * thread run) is called for every value first, then the record is written whole with
 * no Python code in between, so ``take`` always finds whole records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* marshal's type codes (Python/marshal.c). */
#define M_NONE 'N'
#define M_FALSE 'F'
#define M_TRUE 'T'
#define M_INT 'i'
#define M_BINARY_FLOAT 'g'
#define M_STRING 's'
#define M_UNICODE 'u'
#define M_LIST '['
#define M_ASCII 'a'
#define M_SHORT_ASCII 'z'

/* The list's head: its type code and its length (int32, patched by take). */
#define HEAD 5
/* Values of one record encoded before it is written: on the stack up to this many. */
#define STACK_VALUES 32
/* A buffer this large, when a batch used under a quarter of it, is shrunk. */
#define SHRINK_ABOVE (8 << 20)

typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    Py_ssize_t values;
    Py_ssize_t records;
    PyObject *fallback;
} RecordBuffer;

/* How a value is written: its kind, and for a str that is not ASCII or a value the
 * fallback marshalled, the bytes to copy. */
enum { K_NONE, K_FALSE, K_TRUE, K_INT, K_FLOAT, K_BYTES, K_ASCII, K_UTF8, K_BLOB };

typedef struct {
    int kind;
    long i;
    PyObject *bytes; /* owned: K_UTF8, K_BLOB */
} Plan;

static inline void put_u32(char *p, uint32_t v) {
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

static int reserve(RecordBuffer *self, Py_ssize_t more) {
    if (self->len + more <= self->cap) {
        return 0;
    }
    if (more > PY_SSIZE_T_MAX / 2 - self->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = self->cap ? self->cap : 65536;
    while (cap < self->len + more) {
        cap *= 2;
    }
    char *buf = PyMem_RawRealloc(self->buf, (size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

static void release(Plan *plans, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_XDECREF(plans[k].bytes);
    }
}

/* What ``v`` takes in the buffer and how it is written; -1 on error. */
static Py_ssize_t plan_value(RecordBuffer *self, PyObject *v, Plan *plan) {
    plan->bytes = NULL;
    if (v == Py_None) {
        plan->kind = K_NONE;
        return 1;
    }
    if (v == Py_False || v == Py_True) {
        plan->kind = v == Py_True ? K_TRUE : K_FALSE;
        return 1;
    }
    PyTypeObject *type = Py_TYPE(v);
    if (type == &PyUnicode_Type) {
        if (PyUnicode_IS_COMPACT_ASCII(v)) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(v);
            plan->kind = K_ASCII;
            return n < 256 ? 2 + n : HEAD + n;
        }
        /* marshal writes other text as UTF-8, lone surrogates kept. */
        PyObject *utf8 = PyUnicode_AsEncodedString(v, "utf-8", "surrogatepass");
        if (utf8 == NULL) {
            return -1;
        }
        if (PyBytes_GET_SIZE(utf8) > INT32_MAX) {
            Py_DECREF(utf8);
            PyErr_SetString(PyExc_ValueError, "journal: a text over 2 GiB");
            return -1;
        }
        plan->kind = K_UTF8;
        plan->bytes = utf8;
        return HEAD + PyBytes_GET_SIZE(utf8);
    }
    if (type == &PyLong_Type) {
        int overflow = 0;
        long x = PyLong_AsLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (!overflow && x >= INT32_MIN && x <= INT32_MAX) {
            plan->kind = K_INT;
            plan->i = x;
            return HEAD;
        }
        /* a big int: marshal's own encoding, through the fallback */
    } else if (type == &PyFloat_Type) {
        plan->kind = K_FLOAT;
        return 9;
    } else if (type == &PyBytes_Type) {
        if (PyBytes_GET_SIZE(v) > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "journal: bytes over 2 GiB");
            return -1;
        }
        plan->kind = K_BYTES;
        return HEAD + PyBytes_GET_SIZE(v);
    }
    PyObject *blob = PyObject_CallOneArg(self->fallback, v);
    if (blob == NULL) {
        return -1;
    }
    if (!PyBytes_CheckExact(blob) || PyBytes_GET_SIZE(blob) == 0) {
        Py_DECREF(blob);
        PyErr_SetString(PyExc_TypeError, "journal: the fallback must return marshal bytes");
        return -1;
    }
    plan->kind = K_BLOB;
    plan->bytes = blob;
    return PyBytes_GET_SIZE(blob);
}

static char *write_value(char *p, PyObject *v, const Plan *plan) {
    switch (plan->kind) {
    case K_NONE:
        *p++ = M_NONE;
        return p;
    case K_FALSE:
        *p++ = M_FALSE;
        return p;
    case K_TRUE:
        *p++ = M_TRUE;
        return p;
    case K_INT:
        *p++ = M_INT;
        put_u32(p, (uint32_t)(int32_t)plan->i);
        return p + 4;
    case K_FLOAT:
        *p++ = M_BINARY_FLOAT;
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(v), p, 1) < 0) {
            return NULL; /* cannot fail for a double on IEEE platforms */
        }
        return p + 8;
    case K_BYTES: {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        *p++ = M_STRING;
        put_u32(p, (uint32_t)n);
        memcpy(p + 4, PyBytes_AS_STRING(v), (size_t)n);
        return p + 4 + n;
    }
    case K_ASCII: {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        if (n < 256) {
            *p++ = M_SHORT_ASCII;
            *p++ = (char)n;
        } else {
            *p++ = M_ASCII;
            put_u32(p, (uint32_t)n);
            p += 4;
        }
        memcpy(p, PyUnicode_DATA(v), (size_t)n);
        return p + n;
    }
    case K_UTF8: {
        Py_ssize_t n = PyBytes_GET_SIZE(plan->bytes);
        *p++ = M_UNICODE;
        put_u32(p, (uint32_t)n);
        memcpy(p + 4, PyBytes_AS_STRING(plan->bytes), (size_t)n);
        return p + 4 + n;
    }
    default: { /* K_BLOB */
        Py_ssize_t n = PyBytes_GET_SIZE(plan->bytes);
        memcpy(p, PyBytes_AS_STRING(plan->bytes), (size_t)n);
        return p + n;
    }
    }
}

static PyObject *RecordBuffer_add(RecordBuffer *self, PyObject *const *args, Py_ssize_t nargs) {
    Plan stack[STACK_VALUES];
    Plan *plans = stack;
    if (nargs == 0) {
        PyErr_SetString(PyExc_TypeError, "add() takes a record: its kind, then its values");
        return NULL;
    }
    if (self->values > INT32_MAX - nargs) {
        PyErr_SetString(PyExc_OverflowError, "journal: over 2**31 values in one batch");
        return NULL;
    }
    if (nargs > STACK_VALUES) {
        plans = PyMem_Malloc(sizeof(Plan) * (size_t)nargs);
        if (plans == NULL) {
            return PyErr_NoMemory();
        }
    }
    /* Every value planned (and the fallback called) before anything is written. */
    Py_ssize_t need = 0;
    Py_ssize_t k = 0;
    for (; k < nargs; k++) {
        Py_ssize_t n = plan_value(self, args[k], &plans[k]);
        if (n < 0) {
            goto fail;
        }
        need += n;
    }
    if (reserve(self, need) < 0) {
        goto fail;
    }
    char *p = self->buf + self->len;
    for (Py_ssize_t j = 0; j < nargs; j++) {
        p = write_value(p, args[j], &plans[j]);
        if (p == NULL) {
            goto fail;
        }
    }
    self->len += need;
    self->values += nargs;
    self->records += 1;
    release(plans, nargs);
    if (plans != stack) {
        PyMem_Free(plans);
    }
    Py_RETURN_NONE;
fail:
    release(plans, k);
    if (plans != stack) {
        PyMem_Free(plans);
    }
    return NULL;
}

static PyObject *RecordBuffer_take(RecordBuffer *self, PyObject *Py_UNUSED(ignored)) {
    if (self->records == 0) {
        Py_RETURN_NONE;
    }
    put_u32(self->buf + 1, (uint32_t)self->values);
    PyObject *payload = PyBytes_FromStringAndSize(self->buf, self->len);
    if (payload == NULL) {
        return NULL;
    }
    PyObject *out = Py_BuildValue("(Nn)", payload, self->records);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t used = self->len;
    self->len = HEAD;
    self->values = 0;
    self->records = 0;
    if (self->cap > SHRINK_ABOVE && used < self->cap / 4) {
        /* A burst grew it: give back all but twice what a batch takes now. */
        Py_ssize_t cap = used * 2 > 65536 ? used * 2 : 65536;
        char *buf = PyMem_RawRealloc(self->buf, (size_t)cap);
        if (buf != NULL) {
            self->buf = buf;
            self->cap = cap;
        }
    }
    return out;
}

static int RecordBuffer_init(RecordBuffer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fallback", NULL};
    PyObject *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:RecordBuffer", kwlist, &fallback)) {
        return -1;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return -1;
    }
    Py_INCREF(fallback);
    Py_XSETREF(self->fallback, fallback);
    if (self->buf == NULL) {
        self->cap = 0;
        self->len = 0;
        if (reserve(self, HEAD) < 0) {
            return -1;
        }
        self->buf[0] = M_LIST;
        self->len = HEAD;
    }
    return 0;
}

static int RecordBuffer_traverse(RecordBuffer *self, visitproc visit, void *arg) {
    Py_VISIT(self->fallback);
    return 0;
}

static int RecordBuffer_clear(RecordBuffer *self) {
    Py_CLEAR(self->fallback);
    return 0;
}

static void RecordBuffer_dealloc(RecordBuffer *self) {
    PyObject_GC_UnTrack(self);
    RecordBuffer_clear(self);
    PyMem_RawFree(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *RecordBuffer_get_records(RecordBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->records);
}

static PyObject *RecordBuffer_get_values(RecordBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->values);
}

static PyObject *RecordBuffer_get_nbytes(RecordBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->len - HEAD);
}

static PyObject *RecordBuffer_get_capacity(RecordBuffer *self, void *closure) {
    return PyLong_FromSsize_t(self->cap);
}

static PyMethodDef RecordBuffer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))RecordBuffer_add, METH_FASTCALL,
     "add(kind, *values): one record, marshalled now."},
    {"take", (PyCFunction)RecordBuffer_take, METH_NOARGS,
     "take() -> (payload, records) | None: the marshal list of every value added since "
     "the last take, and how many records; the buffer is empty after it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef RecordBuffer_getset[] = {
    {"records", (getter)RecordBuffer_get_records, NULL, "records added, not yet taken", NULL},
    {"values", (getter)RecordBuffer_get_values, NULL, "their values", NULL},
    {"nbytes", (getter)RecordBuffer_get_nbytes, NULL, "their encoded size", NULL},
    {"capacity", (getter)RecordBuffer_get_capacity, NULL, "the buffer's allocation", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RecordBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "simulator.smsc._cjournal.RecordBuffer",
    .tp_basicsize = sizeof(RecordBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The journal's records, marshalled as they are added (see the module).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RecordBuffer_init,
    .tp_dealloc = (destructor)RecordBuffer_dealloc,
    .tp_traverse = (traverseproc)RecordBuffer_traverse,
    .tp_clear = (inquiry)RecordBuffer_clear,
    .tp_methods = RecordBuffer_methods,
    .tp_getset = RecordBuffer_getset,
};

static struct PyModuleDef cjournal_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "simulator.smsc._cjournal",
    .m_doc = "The journal's record buffer in C (see journal_records.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__cjournal(void) {
    if (PyType_Ready(&RecordBufferType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&cjournal_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&RecordBufferType);
    if (PyModule_AddObject(m, "RecordBuffer", (PyObject *)&RecordBufferType) < 0) {
        Py_DECREF(&RecordBufferType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
