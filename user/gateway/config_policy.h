/* config_policy: the routing policies (the config's "policy" object): the
 * global policy and its per-model overrides, the one lookup of a model's
 * policy (route.c, splice, config), and the object as JSON both ways (the
 * config file, GET / PUT /admin/policy). The keys are documented in
 * config.c and README.md ("kvgated configuration"). */
#ifndef KVGATE_GATEWAY_CONFIG_POLICY_H
#define KVGATE_GATEWAY_CONFIG_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "core/podtable.h"
#include "core/policy.h"

#define GW_MAX_OVERRIDES 32

struct cJSON;

struct gw_policy_override {
    char model[POD_MODEL_MAX];
    struct policy_cfg policy;
};

struct gw_policies {
    struct policy_cfg global;
    uint32_t noverrides;
    struct gw_policy_override overrides[GW_MAX_OVERRIDES];
};

/* The policy for `model`: its override, else the global one (also for
 * NULL). Points into p. */
const struct policy_cfg *gw_policies_for(const struct gw_policies *p, const char *model);

/* A "policy" object found at key path `path` (o NULL: absent) over
 * policy_defaults(); overrides inherit every key they do not set from the
 * global policy. 0, or -1 with err = "<path>.<key>: <what is wrong>". */
int gwc_policies_parse(const struct cJSON *o, const char *path, struct gw_policies *out,
                       char *err, size_t errlen);
/* The config's "policy" layout: every global key; each override only with
 * the keys where it differs from the global policy. NULL on ENOMEM. */
struct cJSON *gwc_policies_json(const struct gw_policies *p);
/* cur with a JSON merge patch (RFC 7386: objects merge key by key, null
 * removes a key, anything else replaces) applied to its JSON form, parsed
 * back as the config's "policy" (errors name "policy.<key path>"). 0,
 * -EINVAL with err, or -ENOMEM. */
int gwc_policies_patch(const struct gw_policies *cur, const struct cJSON *patch,
                       struct gw_policies *out, char *err, size_t errlen);

#endif
