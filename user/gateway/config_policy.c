/* config_policy: the config's "policy" object. See config_policy.h. Used
 * by config.c (the file's "policy" key), the admin API (GET / PUT
 * /admin/policy: the policy in force as JSON, a merge patch parsed back)
 * and, for the per-model lookup, by route.c and splice. */
#include "gateway/config_policy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gateway/jsonpath.h"

const struct policy_cfg *gw_policies_for(const struct gw_policies *p, const char *model)
{
    for (uint32_t i = 0; model && i < p->noverrides && i < GW_MAX_OVERRIDES; i++)
        if (!strcmp(p->overrides[i].model, model))
            return &p->overrides[i].policy;
    return &p->global;
}

static int want_mode(struct jp_err *e, const char *path, const cJSON *v,
                     enum policy_mode *m)
{
    static const char modes[] = "prefix-aware, least-request, round-robin, random, token-load";
    char q[96];
    if (!cJSON_IsString(v) || !v->valuestring)
        return jp_fail(e, path, "expected a string (%s)", modes);
    if (policy_mode_parse(v->valuestring, m))
        return jp_fail(e, path, "unknown mode \"%s\" (%s)", jp_shown(v->valuestring, q, sizeof(q)),
                   modes);
    return 0;
}

static int parse_weights(struct jp_err *e, const char *path, const cJSON *o,
                         struct policy_cfg *p)
{
    char kp[JP_PATH_MAX];
    if (jp_obj(e, path, o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, path, o, k))
            return -1;
        jp_join(kp, path, k->string);
        const char *ks = k->string ? k->string : "";
        double *dst = !strcmp(ks, "prefix")    ? &p->w_prefix
                      : !strcmp(ks, "queue")   ? &p->w_queue
                      : !strcmp(ks, "kv")      ? &p->w_kv
                      : !strcmp(ks, "lora")    ? &p->w_lora
                      : !strcmp(ks, "session") ? &p->w_session
                                               : NULL;
        if (!dst)
            return jp_unknown_key(e, path, k);
        if (jp_num(e, kp, k, 0, 0, INFINITY, dst))
            return -1;
    }
    return 0;
}

/* The keys of one policy object over *p. *overrides gets the "overrides"
 * member when allowed (NULL: an override, where that key is unknown). */
static int parse_policy_keys(struct jp_err *e, const char *path, const cJSON *o,
                             struct policy_cfg *p, const cJSON **overrides)
{
    char kp[JP_PATH_MAX];
    if (jp_obj(e, path, o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, path, o, k))
            return -1;
        jp_join(kp, path, k->string);
        const char *ks = k->string ? k->string : "";
        int rc;
        if (!strcmp(ks, "mode"))
            rc = want_mode(e, kp, k, &p->mode);
        else if (!strcmp(ks, "baseline"))
            rc = want_mode(e, kp, k, &p->baseline);
        else if (!strcmp(ks, "shadow"))
            rc = jp_bool(e, kp, k, &p->shadow);
        else if (!strcmp(ks, "canary_percent"))
            rc = jp_num(e, kp, k, 0, 0, 100, &p->canary_pct);
        else if (!strcmp(ks, "weights"))
            rc = parse_weights(e, kp, k, p);
        else if (!strcmp(ks, "queue_saturation"))
            rc = jp_num(e, kp, k, 0, 1, INFINITY, &p->queue_sat);
        else if (!strcmp(ks, "kv_saturation"))
            rc = jp_num(e, kp, k, 0, 1, INFINITY, &p->kv_sat);
        else if (!strcmp(ks, "stale_ms"))
            rc = jp_u32(e, kp, k, 1, 3600000, &p->stale_ms);
        else if (!strcmp(ks, "bounded_load")) {
            rc = jp_num(e, kp, k, 0, 0, INFINITY, &p->bounded_load);
            if (!rc && p->bounded_load > 0 && p->bounded_load < 1)
                rc = jp_fail(e, kp, "expected 0 (off) or a number >= 1");
        } else if (!strcmp(ks, "bounded_floor"))
            rc = jp_num(e, kp, k, 0, 0, INFINITY, &p->bounded_floor);
        else if (!strcmp(ks, "bounded_session"))
            rc = jp_num(e, kp, k, 0, 0, INFINITY, &p->bounded_session);
        else if (!strcmp(ks, "overrides") && overrides) {
            *overrides = k;
            rc = 0;
        } else
            rc = jp_unknown_key(e, path, k);
        if (rc)
            return -1;
    }
    return 0;
}

int gwc_policies_parse(const cJSON *o, const char *path, struct gw_policies *out,
                       char *err, size_t errlen)
{
    struct jp_err e = {err, errlen};
    char kp[JP_PATH_MAX], mp[JP_PATH_MAX];
    const cJSON *ov = NULL;
    memset(out, 0, sizeof(*out));
    policy_defaults(&out->global);
    if (!o)
        return 0;
    /* global keys first, whatever the order: overrides inherit from them */
    if (parse_policy_keys(&e, path, o, &out->global, &ov))
        return -1;
    if (!ov)
        return 0;
    jp_join(kp, path, "overrides");
    if (!cJSON_IsObject(ov))
        return jp_fail(&e, kp, "expected an object keyed by model name");
    for (const cJSON *m = ov->child; m; m = m->next) {
        if (jp_dup_key(&e, kp, ov, m))
            return -1;
        jp_join(mp, kp, m->string);
        size_t n = m->string ? strlen(m->string) : 0;
        if (n == 0 || n >= POD_MODEL_MAX)
            return jp_fail(&e, mp, "a model name is 1 to %d bytes", POD_MODEL_MAX - 1);
        if (out->noverrides >= GW_MAX_OVERRIDES)
            return jp_fail(&e, kp, "at most %d overrides", GW_MAX_OVERRIDES);
        struct gw_policy_override *x = &out->overrides[out->noverrides];
        memcpy(x->model, m->string, n + 1);
        x->policy = out->global;
        if (parse_policy_keys(&e, mp, m, &x->policy, NULL))
            return -1;
        out->noverrides++;
    }
    return 0;
}

/* Adds the keys of p that differ from base (all of them when base is NULL). */
static int policy_keys_json(cJSON *o, const struct policy_cfg *p,
                            const struct policy_cfg *base)
{
#define DIFF(f) (!base || p->f != base->f)
    int ok = 1;
    if (DIFF(mode))
        ok &= !!cJSON_AddStringToObject(o, "mode", policy_mode_name(p->mode));
    if (DIFF(baseline))
        ok &= !!cJSON_AddStringToObject(o, "baseline", policy_mode_name(p->baseline));
    if (DIFF(shadow))
        ok &= !!cJSON_AddBoolToObject(o, "shadow", p->shadow);
    if (DIFF(canary_pct))
        ok &= !!cJSON_AddNumberToObject(o, "canary_percent", p->canary_pct);
    if (DIFF(w_prefix) || DIFF(w_queue) || DIFF(w_kv) || DIFF(w_lora) ||
        DIFF(w_session)) {
        cJSON *w = cJSON_AddObjectToObject(o, "weights");
        ok &= !!w;
        if (w && DIFF(w_prefix))
            ok &= !!cJSON_AddNumberToObject(w, "prefix", p->w_prefix);
        if (w && DIFF(w_queue))
            ok &= !!cJSON_AddNumberToObject(w, "queue", p->w_queue);
        if (w && DIFF(w_kv))
            ok &= !!cJSON_AddNumberToObject(w, "kv", p->w_kv);
        if (w && DIFF(w_lora))
            ok &= !!cJSON_AddNumberToObject(w, "lora", p->w_lora);
        if (w && DIFF(w_session))
            ok &= !!cJSON_AddNumberToObject(w, "session", p->w_session);
    }
    if (DIFF(queue_sat))
        ok &= !!cJSON_AddNumberToObject(o, "queue_saturation", p->queue_sat);
    if (DIFF(kv_sat))
        ok &= !!cJSON_AddNumberToObject(o, "kv_saturation", p->kv_sat);
    if (DIFF(stale_ms))
        ok &= !!cJSON_AddNumberToObject(o, "stale_ms", p->stale_ms);
    if (DIFF(bounded_load))
        ok &= !!cJSON_AddNumberToObject(o, "bounded_load", p->bounded_load);
    if (DIFF(bounded_floor))
        ok &= !!cJSON_AddNumberToObject(o, "bounded_floor", p->bounded_floor);
    if (DIFF(bounded_session))
        ok &= !!cJSON_AddNumberToObject(o, "bounded_session", p->bounded_session);
#undef DIFF
    return ok ? 0 : -ENOMEM;
}

cJSON *gwc_policies_json(const struct gw_policies *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || policy_keys_json(o, &p->global, NULL))
        goto fail;
    cJSON *ov = cJSON_AddObjectToObject(o, "overrides");
    if (!ov)
        goto fail;
    for (uint32_t i = 0; i < p->noverrides && i < GW_MAX_OVERRIDES; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m)
            goto fail;
        cJSON_AddItemToObject(ov, p->overrides[i].model, m);
        if (policy_keys_json(m, &p->overrides[i].policy, &p->global))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}


/* RFC 7386: objects merge key by key, null deletes, anything else replaces. */
static int merge_patch(cJSON *dst, const cJSON *patch)
{
    for (const cJSON *k = patch->child; k; k = k->next) {
        if (!k->string)
            continue;
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, k->string);
        if (cJSON_IsNull(k)) {
            cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
        } else if (cJSON_IsObject(k)) {
            if (!cJSON_IsObject(d)) {
                cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
                d = cJSON_AddObjectToObject(dst, k->string);
                if (!d)
                    return -ENOMEM;
            }
            if (merge_patch(d, k))
                return -ENOMEM;
        } else {
            cJSON *v = cJSON_Duplicate(k, 1);
            if (!v)
                return -ENOMEM;
            cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
            cJSON_AddItemToObject(dst, k->string, v);
        }
    }
    return 0;
}

int gwc_policies_patch(const struct gw_policies *cur, const cJSON *patch,
                       struct gw_policies *out, char *err, size_t errlen)
{
    cJSON *doc = gwc_policies_json(cur);
    if (!doc || merge_patch(doc, patch)) {
        cJSON_Delete(doc);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = gwc_policies_parse(doc, "policy", out, err, errlen);
    cJSON_Delete(doc);
    return rc ? -EINVAL : 0;
}
