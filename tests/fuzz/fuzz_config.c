/* libFuzzer target for user/gateway/config.c (and config_pod.c,
 * config_policy.c): gw_config_parse on arbitrary bytes must not crash,
 * leak or read out of bounds; a config that parses must survive the policy
 * JSON round trip (render, parse again, same values); compared with
 * itself it leaves nothing for a restart, compared with the defaults the
 * list fits its buffer; a config that parses passes or fails the admin
 * exposure check with a sentence naming admin.token and admin.insecure. Host names are
 * not looked up (config.c never resolves them now; HOSTPORT_NO_DNS stays
 * for hostport.c): the fuzzer must not wait on DNS. Seeds: tests/fuzz/corpus/config/. */
#define HOSTPORT_NO_DNS 1
#include "gateway/config.c"
#include "gateway/config_pod.c"
#include "gateway/config_policy.c"
#include "common/netaddr.c"
#include "gateway/jsonpath.c"
#include "core/policy.c"
#include "core/podtable.c"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gw_config c, d;
    static struct gw_policies a, b;
    char err[512], keys[64];
    if (gw_config_parse((const char *)data, size, &c, err, sizeof(err)) == 0) {
        if (gw_config_restart_keys(&c, &c, keys, sizeof(keys)) != 0 || keys[0])
            abort();
        gw_config_defaults(&d);
        gw_config_restart_keys(&d, &c, keys, sizeof(keys));
        if (strlen(keys) >= sizeof(keys))
            abort();
        a = c.policies;
        cJSON *j = gwc_policies_json(&a);
        if (j) {
            if (gwc_policies_parse(j, "policy", &b, err, sizeof(err)) != 0 ||
                memcmp(&a.global, &b.global, sizeof(a.global)) != 0 ||
                a.noverrides != b.noverrides)
                abort();
            cJSON_Delete(j);
        }
        /* the admin exposure check, on the config's own address and on
         * another (a reload) */
        err[0] = 0;
        if (gw_config_check_admin(&c, NULL, err, sizeof(err)) != 0 &&
            (!strstr(err, "admin.token") || !strstr(err, "admin.insecure")))
            abort();
        if (gw_config_check_admin(&c, "0.0.0.0:1", err, sizeof(err)) != 0 &&
            (c.admin_token[0] || c.admin_insecure))
            abort();
    } else if (!err[0] || strlen(err) >= sizeof(err)) {
        abort(); /* every failure says why */
    }
    /* the same bytes as a pod URL */
    if (size < 512) {
        char url[512];
        struct gw_pod_cfg p;
        memcpy(url, data, size);
        url[size] = 0;
        gw_pod_from_url(url, &p, err, sizeof(err));
    }
    return 0;
}
