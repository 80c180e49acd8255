// Package deployfiles holds no code: its tests check the deployment files at
// the repository root, which cannot run on the build machine (Docker is not
// there). They parse docker-compose.yml, the Dockerfile,
// examples/prometheus.yml and examples/alerts.yml and check them against
// the code: every serve flag the compose file passes exists, ports agree
// between services, every metric an alert uses is one pgseal exports, and
// examples/compose/init.sh makes certificates that verify for the host
// names the services use.
package deployfiles
