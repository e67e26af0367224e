# Sourced by scripts that run a real nginx for the NGINX exporter to scrape
# (capture_format_fixtures.sh, render_dashboard.sh): the one configuration they share.
#
#   nginx_stub_status_conf DIR PORT > DIR/nginx.conf
#
# nginx listens on 127.0.0.1:PORT, answers / with "snowflake" and /stub_status with its
# counters, keeps every file it writes under DIR (run it with `nginx -p DIR -c DIR/nginx.conf`),
# and stays in the foreground so the caller can stop it by its pid.
nginx_stub_status_conf() {
    local dir="$1" port="$2"
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /stub_status { stub_status; }
        location / { return 200 "snowflake\n"; }
    }
}
EOF
}
