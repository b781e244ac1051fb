// esxsim: ceso's launcher for govmomi's ESXi simulator (vSphere SOAP API, HostAgent model).
//
// Build (GOPATH mode, Debian packages golang-go and golang-github-vmware-govmomi-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o target/esxsim/esxsim tests/esxsim/main.go
//
// Once ready it prints on stdout, one per line, then flushes:
//
//	ESXSIM_URL=https://127.0.0.1:PORT/sdk
//	ESXSIM_THUMBPRINT_SHA256=AB:CD:...     (only with -tls)
//	ESXSIM_THUMBPRINT_SHA1=AB:CD:...       (only with -tls)
//	ESXSIM_CA_FILE=/path                   (only with -tls and -ca-out)
//	ESXSIM_DATASTORE=LocalDS_0
//	ESXSIM_DATASTORE_DIR=/path
//	ESXSIM_READY=1                         (always last)
//
// Everything else (simulator logs, errors) goes to stderr.
//
// Extra HTTP endpoints served next to the simulator's own:
//
//	POST   /_esxsim/faults?rule=METHOD[@MOID]=[task:]FAULT[*N]   add a fault rule (400 if invalid)
//	GET    /_esxsim/faults                                       list the active rules (JSON)
//	DELETE /_esxsim/faults                                       remove all rules
//	GET    /_esxsim/stats    {"total": N, "methods": {"Login": 1, ...}, "injected": N, "panics": N}
//	DELETE /_esxsim/stats    reset the counters
//
//	GET    /_esxsim/guest    the guest overrides and which VMs run Tools (JSON)
//	POST   /_esxsim/guest?vm=NAME&ip=ADDR|none   the guest of VM NAME reports ADDR on its first NIC
//	                         (none: Tools run but report no address); with -guest-tools only (400 otherwise)
//	POST   /_esxsim/guest?vm=NAME&tools=off      Tools never start in VM NAME (stopped if running)
//	DELETE /_esxsim/guest    remove all guest overrides
//
// Overrides apply at once to a VM whose Tools run, otherwise at its next power-on; they are keyed
// by VM name and may be set before the VM exists.
//
// HostFirewallSystem.UpdateRuleset, which the simulator lacks, is answered by the launcher with a
// real host's semantics (see serveUpdateRuleset): the ruleset's allowedHosts are replaced by the
// spec's; an unknown ruleset id gives NotFound; an entry that is not an address or a network gives
// InvalidArgument. The simulator's own firewallInfo (read with RetrievePropertiesEx) shows the result.
// Fault rules apply to it like to any method.
//
// A SOAP request carrying the header "X-Esxsim-Hidden: 1" is neither counted in the
// stats nor subject to fault injection (used by test helpers that read the host back).
//
// HTTP fault injection on the datastore interface (/folder only):
//
//	POST   /_esxsim/http-faults?rule=METHOD:SUBSTR=ACTION[*N]   add a rule (400 if invalid)
//	GET    /_esxsim/http-faults                                 list the active rules (JSON)
//	DELETE /_esxsim/http-faults                                 remove all rules
//
// A rule matches a request with that HTTP method (GET, PUT, ...) whose decoded /folder path
// contains SUBSTR (empty matches every path); the first matching rule wins and *N limits it to
// its next N hits. ACTION is one of:
//
//	cut@BYTES    GET: the response is sent as the simulator makes it (status, headers with the
//	             full Content-Length) but the connection is dropped after BYTES bytes of body,
//	             without a TLS close_notify, as a broken network would.
//	             PUT/POST: BYTES bytes of the request body are read and stored (as a host keeps
//	             the part of a file that arrived), then the connection is dropped unanswered.
//	status@CODE  the request is answered with HTTP CODE and a short text body, untouched.
//
// Injected HTTP faults are counted in the stats as "httpInjected".
//
// VMware Tools emulation (-guest-tools, off by default; the plain simulator never runs Tools):
//
//   - After a successful PowerOnVM_Task or ResetVM_Task, and -guest-delay later, Tools "start":
//     guest.toolsRunningStatus=guestToolsRunning, guest.toolsStatus=toolsOk,
//     guest.guestState=running, guest.hostName, guest.ipAddress, guest.net[] (one entry per NIC,
//     by MAC, with ipAddress and ipConfig), the matching summary.guest.* and
//     guestHeartbeatStatus=green, all set through the simulator's object map so that
//     WaitForUpdatesEx and RetrievePropertiesEx see them. VMs powered on at start run Tools at once.
//   - The guest plays cloud-init reading the VM's extraConfig (last value per key; "" = unset):
//     guestinfo.metadata, encoded as guestinfo.metadata.encoding says (gzip+base64, gz+b64,
//     base64, b64 or none), is JSON; its local-hostname is guest.hostName (default: the VM
//     name); its netplan v2 "network" (or "network" under a "network" key, or a string encoded
//     as "network.encoding" says) gives each NIC matched by match.macaddress its "addresses"
//     (prefix lengths dropped). A NIC with dhcp4: true, or every NIC when the metadata has no
//     network, gets a DHCP lease from -guest-ip-base (stable per MAC for the launcher's life); a
//     NIC the network config does not mention gets no address. As cloud-init applies network
//     config once per instance, a VM keeps its addresses across boots until its metadata's
//     instance-id changes. guest.ipAddress is the first address in NIC order.
//   - Power-off, suspend, reset and ShutdownGuest stop Tools: not running, no addresses, no
//     host name, heartbeat gray.
//   - ShutdownGuest and RebootGuest need running Tools (SOAP ToolsUnavailable otherwise) and a
//     powered-on VM (InvalidPowerState). ShutdownGuest returns at once and powers the VM off
//     -guest-delay later (at once with a zero delay); RebootGuest (not in the simulator) stops
//     Tools and starts them again -guest-delay later.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

const datastoreName = "LocalDS_0"

// The dangling datastore reference that esx.Datacenter carries in its static content.
var danglingDatastore = types.ManagedObjectReference{Type: "Datastore", Value: "57089c25-85e3ccd4-17b6-000c29d0beb3"}

// ---------------------------------------------------------------------------------------------
// flags

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "esxsim: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	var (
		listen       = flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
		useTLS       = flag.Bool("tls", false, "serve HTTPS with a CA and leaf certificate generated at start")
		caOut        = flag.String("ca-out", "", "with -tls: write the generated CA certificate (PEM) to this file")
		tlsCert      = flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM; with -tls-key) instead of generating one, so the thumbprint is the same on every start")
		tlsKey       = flag.String("tls-key", "", "private key (PEM) of -tls-cert")
		user         = flag.String("user", "", "user name to enforce (with -pass); default: any non-empty credentials are accepted")
		pass         = flag.String("pass", "", "password to enforce (with -user)")
		dsDir        = flag.String("datastore-dir", "", "directory backing datastore "+datastoreName+" (created if missing; default: a temporary directory removed at exit)")
		benchVMs     = flag.Int("vms", 0, "number of extra powered-off VMs named bench-NNNN (1 vCPU, 32 MB, 1 MB disk, e1000 on VM Network)")
		sessionIdle  = flag.Duration("session-idle", 0, "expire sessions idle for this long (between T and 2T); 0 = never")
		delayMs      = flag.Int("delay-ms", 0, "delay every SOAP call by this many milliseconds")
		jitter       = flag.Float64("delay-jitter", 0, "delay jitter as a coefficient of variation")
		exitOnEOF    = flag.Bool("exit-on-stdin-eof", false, "exit when stdin reaches end of file (dies with its parent)")
		guestOn      = flag.Bool("guest-tools", false, "emulate VMware Tools in powered-on VMs (guest IP, host name, ShutdownGuest/RebootGuest)")
		guestDelay   = flag.Duration("guest-delay", 300*time.Millisecond, "with -guest-tools: time from power-on (or reboot, shutdown) until the guest reacts")
		guestIPBase  = flag.String("guest-ip-base", "10.99.0.0", "with -guest-tools: IPv4 base of the DHCP leases the emulated guests get")
		methodDelays multiFlag
		faults       multiFlag
	)
	flag.Var(&methodDelays, "method-delay", "METHOD=MS: extra delay for one SOAP method (repeatable, or comma-separated)")
	flag.Var(&faults, "fault", "fault injection rule METHOD[@MOID]=[task:]FAULT[*N] (repeatable)")
	flag.Parse()

	if flag.NArg() != 0 {
		fatalf("unexpected arguments: %v", flag.Args())
	}
	if (*user == "") != (*pass == "") {
		fatalf("-user and -pass must be given together")
	}

	if *guestDelay < 0 {
		fatalf("-guest-delay must not be negative")
	}
	ipBase := net.ParseIP(*guestIPBase).To4()
	if ipBase == nil {
		fatalf("-guest-ip-base %q: want an IPv4 address", *guestIPBase)
	}

	front := &frontHandler{methods: map[string]int{}}
	for _, spec := range faults {
		r, err := parseRule(spec)
		if err != nil {
			fatalf("-fault %q: %v", spec, err)
		}
		front.rules = append(front.rules, r)
	}

	md := map[string]int{}
	for _, item := range methodDelays {
		for _, kv := range strings.Split(item, ",") {
			if kv == "" {
				continue
			}
			i := strings.LastIndex(kv, "=")
			if i <= 0 {
				fatalf("-method-delay %q: want METHOD=MS", kv)
			}
			ms, err := strconv.Atoi(kv[i+1:])
			if err != nil || ms < 0 {
				fatalf("-method-delay %q: bad milliseconds", kv)
			}
			md[kv[:i]] = ms
		}
	}

	// Datastore directory.
	removeDir := ""
	dir := *dsDir
	if dir == "" {
		d, err := ioutil.TempDir("", "esxsim-ds-")
		if err != nil {
			fatalf("creating temporary datastore dir: %v", err)
		}
		dir, removeDir = d, d
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatalf("creating datastore dir: %v", err)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		fatalf("datastore dir: %v", err)
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	cleanup := func() {
		if removeDir != "" {
			_ = os.RemoveAll(removeDir)
		}
	}

	simulator.SessionIdleTimeout = *sessionIdle

	// The ESX model, without its own datastore and VMs: we create LocalDS_0 in our directory and
	// the two default VMs exactly like Model.Create would (same order, hence the same morefs).
	model := simulator.ESX()
	model.Datastore = 0
	model.Machine = 0
	if err := model.Create(); err != nil {
		cleanup()
		fatalf("creating model: %v", err)
	}
	if err := populate(model, dir, *benchVMs); err != nil {
		cleanup()
		fatalf("populating inventory: %v", err)
	}

	front.tools = newGuestTools(*guestOn, *guestDelay, binary.BigEndian.Uint32(ipBase))
	if *guestOn {
		c, err := vim25.NewClient(context.Background(), model.Service)
		if err != nil {
			cleanup()
			fatalf("in-process client: %v", err)
		}
		front.tools.client = c
		front.tools.startPoweredOn()
	}

	// Create() made Service.delay point at model.DelayConfig, so setting it now takes effect.
	model.DelayConfig.Delay = *delayMs
	model.DelayConfig.DelayJitter = *jitter
	if len(md) > 0 {
		model.DelayConfig.MethodDelay = md
	}
	front.delay = &model.DelayConfig

	listenURL := &url.URL{Host: *listen}
	if *user != "" {
		listenURL.User = url.UserPassword(*user, *pass)
	}
	model.Service.Listen = listenURL

	var leafDER []byte
	var caPEM []byte
	if (*tlsCert == "") != (*tlsKey == "") {
		cleanup()
		fatalf("-tls-cert and -tls-key go together")
	}
	if *tlsCert != "" {
		*useTLS = true
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			cleanup()
			fatalf("loading %s and %s: %v", *tlsCert, *tlsKey, err)
		}
		leafDER = cert.Certificate[0]
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else if *useTLS {
		cert, ca, err := generateCerts()
		if err != nil {
			cleanup()
			fatalf("generating certificates: %v", err)
		}
		leafDER = cert.Certificate[0]
		caPEM = ca
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	server := model.Service.NewServer()
	front.next = model.Service.ServeMux
	// No client knows the port yet, so replacing the handler here is safe.
	server.Config.Handler = front

	addr := server.Listener.Addr().(*net.TCPAddr)
	scheme := "http"
	if *useTLS {
		scheme = "https"
	}

	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ESXSIM_URL=%s://%s/sdk\n", scheme, net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port)))
	if *useTLS {
		s256 := sha256.Sum256(leafDER)
		s1 := sha1.Sum(leafDER)
		fmt.Fprintf(out, "ESXSIM_THUMBPRINT_SHA256=%s\n", colonHex(s256[:]))
		fmt.Fprintf(out, "ESXSIM_THUMBPRINT_SHA1=%s\n", colonHex(s1[:]))
		if *caOut != "" {
			if err := ioutil.WriteFile(*caOut, caPEM, 0o644); err != nil {
				cleanup()
				fatalf("writing %s: %v", *caOut, err)
			}
			abs, _ := filepath.Abs(*caOut)
			fmt.Fprintf(out, "ESXSIM_CA_FILE=%s\n", abs)
		}
	}
	fmt.Fprintf(out, "ESXSIM_DATASTORE=%s\n", datastoreName)
	fmt.Fprintf(out, "ESXSIM_DATASTORE_DIR=%s\n", dir)
	fmt.Fprintf(out, "ESXSIM_READY=1\n")
	if err := out.Flush(); err != nil {
		cleanup()
		os.Exit(1)
	}

	done := make(chan string, 2)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() { done <- "signal " + (<-sigs).String() }()
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(ioutil.Discard, os.Stdin)
			done <- "stdin closed"
		}()
	}
	why := <-done
	log.Printf("esxsim: exiting (%s)", why)
	cleanup()
	os.Exit(0)
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// ---------------------------------------------------------------------------------------------
// inventory

func populate(model *simulator.Model, dir string, bench int) error {
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return err
	}

	// Drop the dangling datastore reference of the static ESX datacenter.
	if dc, ok := simulator.Map.Get(esx.Datacenter.Reference()).(*simulator.Datacenter); ok {
		simulator.Map.WithLock(dc, func() {
			simulator.RemoveReference(&dc.Datastore, danglingDatastore)
		})
	}

	host := object.NewHostSystem(c, esx.HostSystem.Reference())
	dss, err := host.ConfigManager().DatastoreSystem(ctx)
	if err != nil {
		return err
	}
	if _, err := dss.CreateLocalDatastore(ctx, datastoreName, dir); err != nil {
		return fmt.Errorf("CreateLocalDatastore: %v", err)
	}

	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return err
	}
	dc := object.NewDatacenter(c, esx.Datacenter.Reference())
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}

	create := func(name string, powerOn bool) error {
		nic := esx.EthernetCard
		config := types.VirtualMachineConfigSpec{
			Name:    name,
			GuestId: string(types.VirtualMachineGuestOsIdentifierOtherGuest),
			Files:   &types.VirtualMachineFileInfo{VmPathName: "[" + datastoreName + "]"},
		}
		var devices object.VirtualDeviceList
		scsi, _ := devices.CreateSCSIController("pvscsi")
		ide, _ := devices.CreateIDEController()
		cdrom, _ := devices.CreateCdrom(ide.(*types.VirtualIDEController))
		disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
			config.Files.VmPathName+" "+path.Join(name, "disk1.vmdk"))
		disk.CapacityInKB = 1024
		devices = append(devices, scsi, cdrom, disk, &nic)
		config.DeviceChange, _ = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)

		task, err := folders.VmFolder.CreateVM(ctx, config, pool, host)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("CreateVM %s: %v", name, err)
		}
		if powerOn {
			vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
			if _, err := vm.PowerOn(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	// The model's defaults: ha-host_VM0, ha-host_VM1, powered on (Autostart).
	for i := 0; i < 2; i++ {
		if err := create(fmt.Sprintf("%s_VM%d", esx.HostSystem.Reference().Value, i), true); err != nil {
			return err
		}
	}
	for i := 0; i < bench; i++ {
		if err := create(fmt.Sprintf("bench-%04d", i), false); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// certificates

func generateCerts() (tls.Certificate, []byte, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n.Add(n, big.NewInt(1))
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "esxsim test CA", Organization: []string{"ceso esxsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"ceso esxsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return cert, caPEM, nil
}

// ---------------------------------------------------------------------------------------------
// fault rules

type rule struct {
	Spec      string `json:"rule"`
	Method    string `json:"method"`
	Moid      string `json:"moid,omitempty"`
	Fault     string `json:"fault"`
	Task      bool   `json:"task"`
	Remaining int    `json:"remaining"` // -1 = unlimited
	faultType reflect.Type
}

var methodFaultType = reflect.TypeOf((*types.BaseMethodFault)(nil)).Elem()

// resolveFault maps a vim25 fault type name (with or without a "Fault" suffix) to its Go type.
func resolveFault(name string) (reflect.Type, string, error) {
	tf := types.TypeFunc()
	candidates := []string{name}
	if strings.HasSuffix(name, "Fault") {
		candidates = append(candidates, strings.TrimSuffix(name, "Fault"))
	}
	for _, n := range candidates {
		if t, ok := tf(n); ok && t.Kind() == reflect.Struct && reflect.PtrTo(t).Implements(methodFaultType) {
			return t, t.Name(), nil
		}
	}
	return nil, "", fmt.Errorf("%q is not a vim25 MethodFault type", name)
}

// parseRule parses METHOD[@MOID]=[task:]FAULT[*N].
func parseRule(spec string) (*rule, error) {
	spec = strings.TrimSpace(spec)
	eq := strings.LastIndex(spec, "=")
	if eq <= 0 || eq == len(spec)-1 {
		return nil, errors.New("want METHOD[@MOID]=[task:]FAULT[*N]")
	}
	lhs, rhs := spec[:eq], spec[eq+1:]
	r := &rule{Spec: spec, Remaining: -1}
	if at := strings.Index(lhs, "@"); at >= 0 {
		r.Method, r.Moid = lhs[:at], lhs[at+1:]
		if r.Moid == "" {
			return nil, errors.New("empty MOID after @")
		}
	} else {
		r.Method = lhs
	}
	if r.Method == "" || strings.ContainsAny(r.Method, " \t<>/") {
		return nil, fmt.Errorf("bad method name %q", r.Method)
	}
	if strings.HasPrefix(rhs, "task:") {
		r.Task = true
		rhs = rhs[len("task:"):]
	}
	if star := strings.LastIndex(rhs, "*"); star >= 0 {
		n, err := strconv.Atoi(rhs[star+1:])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", rhs[star+1:])
		}
		r.Remaining = n
		rhs = rhs[:star]
	}
	t, name, err := resolveFault(rhs)
	if err != nil {
		return nil, err
	}
	r.faultType, r.Fault = t, name
	return r, nil
}

// ---------------------------------------------------------------------------------------------
// SOAP encoding, copied from the simulator (simulator.go) so injected faults look identical.

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct {
	Fault types.AnyType
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type taskResponse struct {
	XMLName   xml.Name
	Returnval types.ManagedObjectReference `xml:"returnval"`
}

func encodeEnvelope(body interface{}) []byte {
	var out bytes.Buffer
	fmt.Fprint(&out, xml.Header)
	e := xml.NewEncoder(&out)
	err := e.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		log.Printf("esxsim: encoding response: %v", err)
	}
	return out.Bytes()
}

func writeSoapFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	body := struct {
		Fault *soapFault
	}{&soapFault{Code: "ServerFaultCode", String: msg}}
	body.Fault.Detail.Fault = &faultDetail{fault}
	data := encodeEnvelope(body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(data)
}

func writeTaskResponse(w http.ResponseWriter, method string, task types.ManagedObjectReference) {
	// Wrapped in an anonymous struct: taskResponse's XMLName would otherwise replace soapenv:Body.
	body := struct {
		Res *taskResponse
	}{&taskResponse{
		XMLName:   xml.Name{Space: "urn:" + vim25.Namespace, Local: method + "Response"},
		Returnval: task,
	}}
	data := encodeEnvelope(body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// soapMethod extracts the method name (first child of Body) and its _this value.
func soapMethod(body []byte) (method string, this types.ManagedObjectReference) {
	d := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	depth := 0 // depth inside the method element
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case !inBody:
				if t.Name.Local == "Body" {
					inBody = true
				}
			case method == "":
				method = t.Name.Local
				depth = 0
			default:
				depth++
				if depth == 1 && t.Name.Local == "_this" {
					for _, a := range t.Attr {
						if a.Name.Local == "type" {
							this.Type = a.Value
						}
					}
					var text strings.Builder
					for {
						tok, err := d.Token()
						if err != nil {
							return
						}
						if cd, ok := tok.(xml.CharData); ok {
							text.Write(cd)
							continue
						}
						break
					}
					this.Value = strings.TrimSpace(text.String())
					return
				}
			}
		case xml.EndElement:
			if method != "" {
				if depth == 0 {
					return
				}
				depth--
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------
// front handler

type frontHandler struct {
	next  http.Handler
	delay *simulator.DelayConfig
	tools *guestTools

	mu           sync.Mutex
	rules        []*rule
	httpRules    []*httpRule
	total        int
	methods      map[string]int
	injected     int
	httpInjected int
	panics       int
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_esxsim/faults":
		f.serveFaults(w, r)
		return
	case "/_esxsim/stats":
		f.serveStats(w, r)
		return
	case "/_esxsim/guest":
		f.tools.serveControl(w, r)
		return
	case "/_esxsim/http-faults":
		f.serveHTTPFaults(w, r)
		return
	}

	if strings.HasPrefix(r.URL.Path, folderPrefix) {
		if rl := f.matchHTTPRule(r); rl != nil {
			f.injectHTTP(w, r, rl)
			return
		}
	}

	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Printf("esxsim: panic serving %s %s: %v\n%s", r.Method, r.URL.Path, p, debug.Stack())
				panic(http.ErrAbortHandler)
			}
		}()
		f.next.ServeHTTP(w, r)
		return
	}

	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	method, this := soapMethod(body)
	hidden := r.Header.Get("X-Esxsim-Hidden") != ""

	if !hidden && method != "" {
		var hit *rule
		f.mu.Lock()
		f.total++
		f.methods[method]++
		for i, rl := range f.rules {
			if rl.Method != method || (rl.Moid != "" && rl.Moid != this.Value) {
				continue
			}
			hit = rl
			if rl.Remaining > 0 {
				rl.Remaining--
				if rl.Remaining == 0 {
					f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
				}
			}
			f.injected++
			break
		}
		f.mu.Unlock()
		if hit != nil {
			f.inject(w, hit, method, this)
			return
		}
	}

	if method == "UpdateRuleset" {
		f.serveUpdateRuleset(w, r, body, this)
		return
	}

	if f.tools.enabled && this.Type == "VirtualMachine" {
		if method == "ShutdownGuest" || method == "RebootGuest" {
			f.serveGuestOperation(w, r, method, this)
			return
		}
		if toolsPowerMethods[method] {
			status, response := f.serveSDK(w, r, method, this, true)
			if status == http.StatusOK {
				f.tools.afterPowerTask(method, this, response)
			}
			return
		}
	}

	f.serveSDK(w, r, method, this, false)
}

// sleepDelay waits the configured delay of method (without jitter), as the simulator would.
func (f *frontHandler) sleepDelay(method string) {
	if f.delay == nil {
		return
	}
	d := f.delay.Delay
	if md, ok := f.delay.MethodDelay[method]; ok {
		d += md
	}
	if d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
}

func (f *frontHandler) inject(w http.ResponseWriter, rl *rule, method string, this types.ManagedObjectReference) {
	f.sleepDelay(method)
	fault := reflect.New(rl.faultType).Interface().(types.BaseMethodFault)
	if !rl.Task {
		writeSoapFault(w, "injected "+rl.Fault, fault)
		return
	}
	name := strings.TrimSuffix(method, "_Task") + "Task"
	entity := this
	if entity.Type == "" {
		entity = types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"}
	}
	task := simulator.CreateTask(entity, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})
	writeTaskResponse(w, method, task.Run())
}

type trackingWriter struct {
	http.ResponseWriter
	wrote  bool
	status int
	body   *bytes.Buffer // a copy of the body, when asked for
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.status = http.StatusOK
	}
	t.wrote = true
	if t.body != nil {
		t.body.Write(b)
	}
	return t.ResponseWriter.Write(b)
}

// vmCreators are the methods whose panics can leave a nameless VM behind in their folder (_this).
var vmCreators = map[string]bool{
	"CreateVM_Task":   true,
	"RegisterVM_Task": true,
}

func vmSet() map[types.ManagedObjectReference]bool {
	set := map[types.ManagedObjectReference]bool{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		set[e.Reference()] = true
	}
	return set
}

// serveSDK passes a SOAP call to the simulator. It returns the HTTP status of the answer and,
// with keepBody, a copy of its body (0 and nil after a simulator panic).
func (f *frontHandler) serveSDK(w http.ResponseWriter, r *http.Request, method string, this types.ManagedObjectReference, keepBody bool) (status int, body []byte) {
	var before map[types.ManagedObjectReference]bool
	if vmCreators[method] {
		before = vmSet()
	}
	tw := &trackingWriter{ResponseWriter: w}
	if keepBody {
		tw.body = &bytes.Buffer{}
	}
	defer func() {
		p := recover()
		if p == nil {
			status = tw.status
			if tw.body != nil {
				body = tw.body.Bytes()
			}
			return
		}
		status, body = 0, nil
		if p == http.ErrAbortHandler {
			panic(p)
		}
		f.mu.Lock()
		f.panics++
		f.mu.Unlock()
		log.Printf("esxsim: simulator panic in %s (_this %s:%s): %v\n%s", method, this.Type, this.Value, p, debug.Stack())
		if before != nil {
			removeGhosts(this, before)
		}
		if tw.wrote {
			panic(http.ErrAbortHandler)
		}
		writeSoapFault(w, fmt.Sprintf("simulator panic in %s: %v", method, p),
			&types.SystemError{Reason: fmt.Sprintf("simulator panic: %v", p)})
	}()
	f.next.ServeHTTP(tw, r)
	return
}

// removeGhosts unregisters the nameless VMs a panicking create left in folder.
func removeGhosts(folderRef types.ManagedObjectReference, before map[types.ManagedObjectReference]bool) {
	folder, ok := simulator.Map.Get(folderRef).(*simulator.Folder)
	if !ok {
		return
	}
	var ghosts []types.ManagedObjectReference
	simulator.Map.WithLock(folder, func() {
		for _, ref := range folder.ChildEntity {
			if ref.Type != "VirtualMachine" || before[ref] {
				continue
			}
			if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); !ok || vm.Name == "" {
				ghosts = append(ghosts, ref)
			}
		}
	})
	for _, ref := range ghosts {
		log.Printf("esxsim: removing ghost VM %s left by the panic", ref.Value)
		simulator.Map.Remove(ref)
		simulator.Map.RemoveReference(folder, &folder.ChildEntity, ref)
	}
}

func (f *frontHandler) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		rules := append([]*rule{}, f.rules...)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"rules": rules})
	case http.MethodPost:
		_ = r.ParseForm()
		specs := r.Form["rule"]
		if len(specs) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing rule parameter"})
			return
		}
		var parsed []*rule
		for _, spec := range specs {
			rl, err := parseRule(spec)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("rule %q: %v", spec, err)})
				return
			}
			parsed = append(parsed, rl)
		}
		f.mu.Lock()
		f.rules = append(f.rules, parsed...)
		n := len(f.rules)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"added": len(parsed), "rules": n})
	case http.MethodDelete:
		f.mu.Lock()
		n := len(f.rules)
		f.rules = nil
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"removed": n})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *frontHandler) serveStats(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		methods := make(map[string]int, len(f.methods))
		for k, v := range f.methods {
			methods[k] = v
		}
		v := map[string]interface{}{"total": f.total, "methods": methods, "injected": f.injected, "httpInjected": f.httpInjected, "panics": f.panics}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, v)
	case http.MethodDelete:
		f.mu.Lock()
		f.total, f.injected, f.httpInjected, f.panics = 0, 0, 0, 0
		f.methods = map[string]int{}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// ---------------------------------------------------------------------------------------------
// HTTP fault injection on /folder

const folderPrefix = "/folder/"

// httpRule is one parsed METHOD:SUBSTR=ACTION[*N] rule.
type httpRule struct {
	Spec      string `json:"rule"`
	Method    string `json:"method"`
	Match     string `json:"match"`
	Action    string `json:"action"`           // "cut" or "status"
	Bytes     int64  `json:"bytes,omitempty"`  // cut: body bytes let through
	Status    int    `json:"status,omitempty"` // status: the HTTP status answered
	Remaining int    `json:"remaining"`        // -1 = unlimited
}

var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPut: true,
	http.MethodPost: true, http.MethodDelete: true,
}

// parseHTTPRule parses METHOD:SUBSTR=cut@BYTES[*N] or METHOD:SUBSTR=status@CODE[*N].
func parseHTTPRule(spec string) (*httpRule, error) {
	const want = "want METHOD:PATH-SUBSTRING=cut@BYTES[*N] or METHOD:PATH-SUBSTRING=status@CODE[*N]"
	spec = strings.TrimSpace(spec)
	colon := strings.Index(spec, ":")
	eq := strings.LastIndex(spec, "=")
	if colon <= 0 || eq < colon {
		return nil, errors.New(want)
	}
	r := &httpRule{Spec: spec, Method: strings.ToUpper(spec[:colon]), Match: spec[colon+1 : eq], Remaining: -1}
	if !httpMethods[r.Method] {
		return nil, fmt.Errorf("unsupported HTTP method %q", spec[:colon])
	}
	action := spec[eq+1:]
	if star := strings.LastIndex(action, "*"); star >= 0 {
		n, err := strconv.Atoi(action[star+1:])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", action[star+1:])
		}
		r.Remaining = n
		action = action[:star]
	}
	at := strings.Index(action, "@")
	if at < 0 {
		return nil, errors.New(want)
	}
	r.Action = action[:at]
	arg := action[at+1:]
	switch r.Action {
	case "cut":
		n, err := strconv.ParseInt(arg, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad byte count %q", arg)
		}
		r.Bytes = n
	case "status":
		code, err := strconv.Atoi(arg)
		if err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("bad HTTP status %q", arg)
		}
		r.Status = code
	default:
		return nil, fmt.Errorf("unknown action %q (cut or status)", r.Action)
	}
	return r, nil
}

// matchHTTPRule returns the first rule matching the request (counting the hit), or nil.
func (f *frontHandler) matchHTTPRule(r *http.Request) *httpRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, rl := range f.httpRules {
		if rl.Method != r.Method || !strings.Contains(r.URL.Path, rl.Match) {
			continue
		}
		if rl.Remaining > 0 {
			rl.Remaining--
			if rl.Remaining == 0 {
				f.httpRules = append(f.httpRules[:i:i], f.httpRules[i+1:]...)
			}
		}
		f.httpInjected++
		hit := *rl
		return &hit
	}
	return nil
}

// injectHTTP answers a /folder request as the rule says.
func (f *frontHandler) injectHTTP(w http.ResponseWriter, r *http.Request, rl *httpRule) {
	log.Printf("esxsim: HTTP fault %q on %s %s", rl.Spec, r.Method, r.URL.Path)
	if rl.Action == "status" {
		http.Error(w, fmt.Sprintf("injected HTTP %d", rl.Status), rl.Status)
		return
	}
	hijacker, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "esxsim: connection cannot be hijacked", http.StatusInternalServerError)
		return
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The simulator stores what arrived before the connection broke.
		r.Body = ioutil.NopCloser(io.LimitReader(r.Body, rl.Bytes))
		r.ContentLength = -1
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := hijacker.Hijack()
		if err == nil {
			dropConnection(conn)
		}
		return
	}
	conn, buf, err := hijacker.Hijack()
	if err != nil {
		log.Printf("esxsim: hijacking %s: %v", r.URL.Path, err)
		return
	}
	cw := &cutWriter{header: http.Header{}, out: buf.Writer, remaining: rl.Bytes}
	func() {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				log.Printf("esxsim: panic serving %s with a cut: %v", r.URL.Path, p)
			}
		}()
		f.next.ServeHTTP(cw, r)
	}()
	_ = buf.Flush()
	dropConnection(conn)
}

// dropConnection closes a hijacked connection the way a broken network does: no TLS
// close_notify, just the TCP connection gone.
func dropConnection(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = conn.Close()
}

var errCut = errors.New("esxsim: connection cut by an injected HTTP fault")

// cutWriter writes an HTTP/1.1 response straight to a hijacked connection, letting through
// only the first `remaining` bytes of the body.
type cutWriter struct {
	header      http.Header
	out         *bufio.Writer
	wroteHeader bool
	remaining   int64
}

func (c *cutWriter) Header() http.Header { return c.header }

func (c *cutWriter) WriteHeader(code int) {
	if c.wroteHeader {
		return
	}
	c.wroteHeader = true
	c.header.Set("Connection", "close")
	fmt.Fprintf(c.out, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = c.header.Write(c.out)
	_, _ = c.out.WriteString("\r\n")
}

func (c *cutWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	if int64(len(b)) <= c.remaining {
		c.remaining -= int64(len(b))
		return c.out.Write(b)
	}
	n, _ := c.out.Write(b[:c.remaining])
	c.remaining = 0
	return n, errCut
}

func (f *frontHandler) serveHTTPFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		rules := append([]*httpRule{}, f.httpRules...)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"rules": rules})
	case http.MethodPost:
		_ = r.ParseForm()
		specs := r.Form["rule"]
		if len(specs) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing rule parameter"})
			return
		}
		var parsed []*httpRule
		for _, spec := range specs {
			rl, err := parseHTTPRule(spec)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("rule %q: %v", spec, err)})
				return
			}
			parsed = append(parsed, rl)
		}
		f.mu.Lock()
		f.httpRules = append(f.httpRules, parsed...)
		n := len(f.httpRules)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"added": len(parsed), "rules": n})
	case http.MethodDelete:
		f.mu.Lock()
		n := len(f.httpRules)
		f.httpRules = nil
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"removed": n})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// ---------------------------------------------------------------------------------------------
// VMware Tools emulation (-guest-tools)

const poweredOn = types.VirtualMachinePowerStatePoweredOn

// toolsPowerMethods are the VM methods after whose success Tools stop (and start again -guest-delay
// later after a power-on or reset).
var toolsPowerMethods = map[string]bool{
	"PowerOnVM_Task":  true,
	"ResetVM_Task":    true,
	"PowerOffVM_Task": true,
	"SuspendVM_Task":  true,
}

// guestOverride is what a test asked one VM's guest to report instead of what its metadata says.
type guestOverride struct {
	// IP is reported on the first NIC ("" = as the metadata says).
	IP string `json:"ip,omitempty"`
	// NoIP: Tools run but report no address.
	NoIP bool `json:"noIp,omitempty"`
	// ToolsOff: Tools never start.
	ToolsOff bool `json:"toolsOff,omitempty"`
}

// guestState is the launcher's view of one VM's guest.
type guestState struct {
	// gen is bumped on every power change: a pending start or shutdown of an older generation
	// does nothing.
	gen     uint64
	running bool
	// The network configuration the emulated cloud-init applied, and for which instance-id.
	applied    bool
	instanceID string
	nicAddrs   map[string][]string // MAC (lower case) -> addresses, "IP/prefix"
}

type guestTools struct {
	enabled bool
	delay   time.Duration
	client  *vim25.Client // in-process, for the delayed power-off of ShutdownGuest

	// mu guards the fields below. It is taken before any simulator object lock, never after.
	mu        sync.Mutex
	vms       map[string]*guestState   // by moref value
	overrides map[string]guestOverride // by VM name
	leases    map[string]string        // MAC (lower case) -> "IP/24"
	nextLease uint32
}

func newGuestTools(enabled bool, delay time.Duration, ipBase uint32) *guestTools {
	return &guestTools{
		enabled:   enabled,
		delay:     delay,
		vms:       map[string]*guestState{},
		overrides: map[string]guestOverride{},
		leases:    map[string]string{},
		nextLease: ipBase,
	}
}

func (g *guestTools) state(ref types.ManagedObjectReference) *guestState {
	st := g.vms[ref.Value]
	if st == nil {
		st = &guestState{}
		g.vms[ref.Value] = st
	}
	return st
}

// lookupVM returns the simulator's VM, or nil once it is gone.
func lookupVM(ref types.ManagedObjectReference) *simulator.VirtualMachine {
	vm, _ := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	return vm
}

// later runs f -guest-delay from now, or at once when the delay is zero.
func (g *guestTools) later(f func()) {
	if g.delay <= 0 {
		f()
		return
	}
	time.AfterFunc(g.delay, f)
}

// startPoweredOn starts Tools at once in the VMs that were powered on before the launcher was ready.
func (g *guestTools) startPoweredOn() {
	vms := simulator.Map.All("VirtualMachine")
	// In name order, so that their DHCP leases are the same on every start.
	sort.Slice(vms, func(i, j int) bool { return vms[i].Entity().Name < vms[j].Entity().Name })
	for _, e := range vms {
		ref := e.Reference()
		vm := lookupVM(ref)
		if vm == nil || vm.Runtime.PowerState != poweredOn {
			continue
		}
		g.start(ref, g.stop(ref))
	}
}

// afterPowerTask reacts to a power method the simulator answered with a Task.
func (g *guestTools) afterPowerTask(method string, ref types.ManagedObjectReference, response []byte) {
	if !taskSucceeded(response) {
		return
	}
	gen := g.stop(ref)
	if method == "PowerOnVM_Task" || method == "ResetVM_Task" {
		g.later(func() { g.start(ref, gen) })
	}
}

// stop stops Tools (resetting the guest properties if they ran) and cancels whatever was pending.
// It returns the new generation.
func (g *guestTools) stop(ref types.ManagedObjectReference) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.state(ref)
	st.gen++
	if st.running {
		st.running = false
		if vm := lookupVM(ref); vm != nil {
			simulator.Map.WithLock(vm, func() { simulator.Map.Update(vm, stoppedGuest(vm)) })
		}
	}
	return st.gen
}

// start starts Tools, unless the VM's power changed since generation gen, it is not powered on,
// or a test turned its Tools off.
func (g *guestTools) start(ref types.ManagedObjectReference, gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.vms[ref.Value]
	vm := lookupVM(ref)
	if st == nil || st.gen != gen || vm == nil {
		return
	}
	simulator.Map.WithLock(vm, func() {
		if vm.Runtime.PowerState != poweredOn || g.overrides[vm.Name].ToolsOff {
			return
		}
		simulator.Map.Update(vm, g.runningGuest(vm, st))
		st.running = true
	})
}

// refreshLocked reports the guest of a VM whose Tools run again, after an override changed.
func (g *guestTools) refreshLocked(ref types.ManagedObjectReference, st *guestState) {
	vm := lookupVM(ref)
	if vm == nil || !st.running {
		return
	}
	simulator.Map.WithLock(vm, func() {
		if g.overrides[vm.Name].ToolsOff {
			st.gen++
			st.running = false
			simulator.Map.Update(vm, stoppedGuest(vm))
			return
		}
		simulator.Map.Update(vm, g.runningGuest(vm, st))
	})
}

// shutdown stops Tools now and powers the VM off -guest-delay later, as a guest shutting down.
func (g *guestTools) shutdown(ref types.ManagedObjectReference) {
	gen := g.stop(ref)
	g.later(func() {
		g.mu.Lock()
		current := g.state(ref).gen == gen
		g.mu.Unlock()
		if !current {
			return
		}
		// The simulator's own ShutdownGuest powers off at once, with its events.
		if err := object.NewVirtualMachine(g.client, ref).ShutdownGuest(context.Background()); err != nil {
			log.Printf("esxsim: guest shutdown of %s: %v", ref.Value, err)
		}
	})
}

// reboot stops Tools now and starts them again -guest-delay later.
func (g *guestTools) reboot(ref types.ManagedObjectReference) {
	gen := g.stop(ref)
	g.later(func() { g.start(ref, gen) })
}

func (g *guestTools) toolsRunning(ref types.ManagedObjectReference) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state(ref).running
}

// lease returns the stable DHCP address of a MAC.
func (g *guestTools) lease(mac string) string {
	if a, ok := g.leases[mac]; ok {
		return a
	}
	for {
		g.nextLease++
		if b := g.nextLease & 0xff; b != 0 && b != 0xff {
			break
		}
	}
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], g.nextLease)
	a := net.IP(ip[:]).String() + "/24"
	g.leases[mac] = a
	return a
}

// stoppedGuest: the guest properties of a VM whose Tools do not run.
func stoppedGuest(vm *simulator.VirtualMachine) []types.PropertyChange {
	gray := types.ManagedEntityStatusGray
	notRunning := string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
	return []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: notRunning},
		{Name: "guest.toolsStatus", Val: types.VirtualMachineToolsStatusToolsNotRunning},
		{Name: "guest.guestState", Val: "notRunning"},
		{Name: "guest.hostName", Val: nil},
		{Name: "guest.ipAddress", Val: nil},
		{Name: "guest.net", Val: guestNics(vm, func(int, string) []string { return nil })},
		{Name: "summary.guest.toolsRunningStatus", Val: notRunning},
		{Name: "summary.guest.toolsStatus", Val: types.VirtualMachineToolsStatusToolsNotRunning},
		{Name: "summary.guest.hostName", Val: nil},
		{Name: "summary.guest.ipAddress", Val: nil},
		{Name: "guestHeartbeatStatus", Val: gray},
		{Name: "summary.quickStats.guestHeartbeatStatus", Val: gray},
	}
}

// runningGuest: the guest properties of a VM whose Tools run, from its metadata and overrides.
// Called with g.mu and the VM's lock held.
func (g *guestTools) runningGuest(vm *simulator.VirtualMachine, st *guestState) []types.PropertyChange {
	meta, err := guestMetadata(lastExtraConfig(vm))
	if err != nil {
		log.Printf("esxsim: VM %s: %v; the emulated guest ignores its metadata", vm.Name, err)
		meta = nil
	}
	hostName := vm.Name
	if h, ok := meta["local-hostname"].(string); ok && h != "" {
		hostName = h
	}
	// cloud-init applies the network configuration once per instance.
	instanceID, _ := meta["instance-id"].(string)
	if !st.applied || instanceID == "" || instanceID != st.instanceID {
		st.nicAddrs = g.networkAddresses(vm, meta)
		st.applied, st.instanceID = true, instanceID
	}

	ov := g.overrides[vm.Name]
	nics := guestNics(vm, func(i int, mac string) []string {
		switch {
		case ov.NoIP:
			return nil
		case ov.IP != "" && i == 0:
			return []string{ov.IP}
		}
		return st.nicAddrs[mac]
	})
	var ipAddress interface{}
	for _, nic := range nics {
		if len(nic.IpAddress) > 0 {
			ipAddress = nic.IpAddress[0]
			break
		}
	}

	green := types.ManagedEntityStatusGreen
	running := string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
	unmanaged := string(types.VirtualMachineToolsVersionStatusGuestToolsUnmanaged)
	return []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: running},
		{Name: "guest.toolsStatus", Val: types.VirtualMachineToolsStatusToolsOk},
		{Name: "guest.toolsVersionStatus2", Val: unmanaged},
		{Name: "guest.guestState", Val: "running"},
		{Name: "guest.hostName", Val: hostName},
		{Name: "guest.ipAddress", Val: ipAddress},
		{Name: "guest.net", Val: nics},
		{Name: "summary.guest.toolsRunningStatus", Val: running},
		{Name: "summary.guest.toolsStatus", Val: types.VirtualMachineToolsStatusToolsOk},
		{Name: "summary.guest.toolsVersionStatus2", Val: unmanaged},
		{Name: "summary.guest.hostName", Val: hostName},
		{Name: "summary.guest.ipAddress", Val: ipAddress},
		{Name: "guestHeartbeatStatus", Val: green},
		{Name: "summary.quickStats.guestHeartbeatStatus", Val: green},
	}
}

// networkAddresses: the addresses ("IP/prefix") the emulated cloud-init gives each NIC, by MAC.
func (g *guestTools) networkAddresses(vm *simulator.VirtualMachine, meta map[string]interface{}) map[string][]string {
	config, err := networkConfig(meta)
	if err != nil {
		log.Printf("esxsim: VM %s: %v; the emulated guest falls back to DHCP", vm.Name, err)
		config = nil
	}
	out := map[string][]string{}
	for _, mac := range vmMACs(vm) {
		if config == nil {
			out[mac] = []string{g.lease(mac)}
			continue
		}
		eth, ok := config[mac]
		if !ok {
			continue
		}
		addrs := append([]string{}, eth.addresses...)
		if eth.dhcp4 {
			addrs = append(addrs, g.lease(mac))
		}
		out[mac] = addrs
	}
	return out
}

func vmMACs(vm *simulator.VirtualMachine) []string {
	var macs []string
	for _, d := range vm.Config.Hardware.Device {
		if card, ok := d.(types.BaseVirtualEthernetCard); ok {
			macs = append(macs, strings.ToLower(card.GetVirtualEthernetCard().MacAddress))
		}
	}
	return macs
}

// guestNics builds guest.net: one entry per NIC in device order, with the addresses
// ("IP[/prefix]") addrs gives for its index and lower-case MAC.
func guestNics(vm *simulator.VirtualMachine, addrs func(i int, mac string) []string) []types.GuestNicInfo {
	nics := []types.GuestNicInfo{}
	for _, d := range vm.Config.Hardware.Device {
		card, ok := d.(types.BaseVirtualEthernetCard)
		if !ok {
			continue
		}
		c := card.GetVirtualEthernetCard()
		nic := types.GuestNicInfo{
			MacAddress:     c.MacAddress,
			Connected:      true,
			DeviceConfigId: c.Key,
		}
		for _, old := range vm.Guest.Net {
			if old.DeviceConfigId == c.Key {
				nic.Network = old.Network
			}
		}
		if b, ok := c.Backing.(*types.VirtualEthernetCardNetworkBackingInfo); ok && nic.Network == "" {
			nic.Network = b.DeviceName
		}
		for _, a := range addrs(len(nics), strings.ToLower(c.MacAddress)) {
			ip, prefix, ok := splitAddress(a)
			if !ok {
				log.Printf("esxsim: VM %s: ignoring address %q", vm.Name, a)
				continue
			}
			if nic.IpConfig == nil {
				nic.IpConfig = &types.NetIpConfigInfo{}
			}
			nic.IpAddress = append(nic.IpAddress, ip)
			nic.IpConfig.IpAddress = append(nic.IpConfig.IpAddress, types.NetIpConfigInfoIpAddress{
				IpAddress: ip, PrefixLength: prefix, State: "preferred",
			})
		}
		nics = append(nics, nic)
	}
	return nics
}

// splitAddress parses "IP" or "IP/prefix" (a missing prefix means a host address).
func splitAddress(a string) (string, int32, bool) {
	if strings.Contains(a, "/") {
		ip, n, err := net.ParseCIDR(a)
		if err != nil {
			return "", 0, false
		}
		ones, _ := n.Mask.Size()
		return ip.String(), int32(ones), true
	}
	ip := net.ParseIP(a)
	if ip == nil {
		return "", 0, false
	}
	if ip.To4() != nil {
		return ip.String(), 32, true
	}
	return ip.String(), 128, true
}

// lastExtraConfig folds the VM's append-only extraConfig: last value per key, "" = unset.
func lastExtraConfig(vm *simulator.VirtualMachine) map[string]string {
	out := map[string]string{}
	for _, o := range vm.Config.ExtraConfig {
		v := o.GetOptionValue()
		s, ok := v.Value.(string)
		if !ok && v.Value != nil {
			s = fmt.Sprint(v.Value)
		}
		if s == "" {
			delete(out, v.Key)
		} else {
			out[v.Key] = s
		}
	}
	return out
}

// decodeGuestinfo decodes a guestinfo value the way cloud-init's VMware datasource does.
func decodeGuestinfo(value, encoding string) ([]byte, error) {
	compact := strings.Join(strings.Fields(value), "")
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "":
		return []byte(value), nil
	case "base64", "b64":
		return base64.StdEncoding.DecodeString(compact)
	case "gzip+base64", "gz+base64", "gzip+b64", "gz+b64":
		raw, err := base64.StdEncoding.DecodeString(compact)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return ioutil.ReadAll(zr)
	default:
		return nil, fmt.Errorf("unknown encoding %q (cloud-init knows gz+base64, gzip+base64, gz+b64, gzip+b64, base64, b64)", encoding)
	}
}

// guestMetadata decodes guestinfo.metadata (nil when the VM has none).
func guestMetadata(extra map[string]string) (map[string]interface{}, error) {
	text, ok := extra["guestinfo.metadata"]
	if !ok {
		return nil, nil
	}
	data, err := decodeGuestinfo(text, extra["guestinfo.metadata.encoding"])
	if err != nil {
		return nil, fmt.Errorf("guestinfo.metadata: %v", err)
	}
	var meta map[string]interface{}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("guestinfo.metadata is not a JSON object (the emulation reads JSON only): %v", err)
	}
	return meta, nil
}

// ethernetConfig is what the emulation reads of one netplan v2 ethernets entry.
type ethernetConfig struct {
	addresses []string
	dhcp4     bool
}

// networkConfig reads the metadata's netplan v2 network: ethernets by lower-case MAC (nil when
// the metadata has no network).
func networkConfig(meta map[string]interface{}) (map[string]ethernetConfig, error) {
	raw := meta["network"]
	if raw == nil {
		return nil, nil
	}
	if text, ok := raw.(string); ok {
		encoding, _ := meta["network.encoding"].(string)
		data, err := decodeGuestinfo(text, encoding)
		if err != nil {
			return nil, fmt.Errorf("metadata network: %v", err)
		}
		var v interface{}
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("metadata network is not JSON (the emulation reads JSON only): %v", err)
		}
		raw = v
	}
	network, ok := raw.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("metadata network is not an object")
	}
	if inner, ok := network["network"].(map[string]interface{}); ok {
		network = inner
	}
	if v, _ := network["version"].(float64); v != 2 {
		return nil, fmt.Errorf("metadata network version %v: the emulation reads netplan version 2 only", network["version"])
	}
	ethernets, _ := network["ethernets"].(map[string]interface{})
	out := map[string]ethernetConfig{}
	for name, e := range ethernets {
		entry, _ := e.(map[string]interface{})
		match, _ := entry["match"].(map[string]interface{})
		mac, _ := match["macaddress"].(string)
		if mac == "" {
			log.Printf("esxsim: network ethernets.%s has no match.macaddress (the emulation matches NICs by MAC only)", name)
			continue
		}
		var eth ethernetConfig
		list, _ := entry["addresses"].([]interface{})
		for _, a := range list {
			if s, ok := a.(string); ok {
				eth.addresses = append(eth.addresses, s)
			}
		}
		switch v := entry["dhcp4"].(type) {
		case bool:
			eth.dhcp4 = v
		case string:
			eth.dhcp4 = v == "true" || v == "yes" || v == "on"
		}
		out[strings.ToLower(mac)] = eth
	}
	return out, nil
}

// taskSucceeded tells whether a SOAP answer returns a Task that ended in success.
func taskSucceeded(response []byte) bool {
	ref, ok := returnedMoref(response)
	if !ok || ref.Type != "Task" {
		return false
	}
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return false
	}
	var state types.TaskInfoState
	simulator.Map.WithLock(task, func() { state = task.Info.State })
	return state == types.TaskInfoStateSuccess
}

// returnedMoref reads the first <returnval type="T">value</returnval> of a SOAP answer.
func returnedMoref(response []byte) (types.ManagedObjectReference, bool) {
	d := xml.NewDecoder(bytes.NewReader(response))
	for {
		tok, err := d.Token()
		if err != nil {
			return types.ManagedObjectReference{}, false
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "returnval" {
			continue
		}
		var ref types.ManagedObjectReference
		for _, a := range start.Attr {
			if a.Name.Local == "type" {
				ref.Type = a.Value
			}
		}
		var text string
		if err := d.DecodeElement(&text, &start); err != nil {
			return types.ManagedObjectReference{}, false
		}
		ref.Value = strings.TrimSpace(text)
		return ref, true
	}
}

type emptyResponse struct {
	XMLName xml.Name
}

func writeEmptyResponse(w http.ResponseWriter, method string) {
	body := struct {
		Res *emptyResponse
	}{&emptyResponse{XMLName: xml.Name{Space: "urn:" + vim25.Namespace, Local: method + "Response"}}}
	data := encodeEnvelope(body)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// probeSession asks the simulator whether the request's session may call a method of the
// existing object this. It sends RebootGuest, which the simulator does not implement: its answer
// MethodNotFound means yes (nil is returned). Any other answer (NotAuthenticated,
// ManagedObjectNotFound) is returned, to be passed on as it is.
func (f *frontHandler) probeSession(r *http.Request, this types.ManagedObjectReference) *httptest.ResponseRecorder {
	var moid bytes.Buffer
	_ = xml.EscapeText(&moid, []byte(this.Value))
	body := `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<soapenv:Body><RebootGuest xmlns="urn:vim25"><_this type="VirtualMachine">` + moid.String() +
		`</_this></RebootGuest></soapenv:Body></soapenv:Envelope>`
	probe := r.Clone(r.Context())
	probe.Body = ioutil.NopCloser(strings.NewReader(body))
	probe.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, probe)
	if rec.Code == http.StatusInternalServerError && bytes.Contains(rec.Body.Bytes(), []byte("MethodNotFoundFault")) {
		return nil
	}
	return rec
}

// serveGuestOperation answers ShutdownGuest and RebootGuest as a host whose VMs run Tools would.
func (f *frontHandler) serveGuestOperation(w http.ResponseWriter, r *http.Request, method string, this types.ManagedObjectReference) {
	if rec := f.probeSession(r, this); rec != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	f.sleepDelay(method)
	vm := lookupVM(this)
	if vm == nil {
		writeSoapFault(w, "", &types.ManagedObjectNotFound{Obj: this})
		return
	}
	var power types.VirtualMachinePowerState
	simulator.Map.WithLock(vm, func() { power = vm.Runtime.PowerState })
	if power != poweredOn {
		writeSoapFault(w, "", &types.InvalidPowerState{RequestedState: poweredOn, ExistingState: power})
		return
	}
	if !f.tools.toolsRunning(this) {
		writeSoapFault(w, "VMware Tools is not running in the guest", &types.ToolsUnavailable{})
		return
	}
	if method == "ShutdownGuest" {
		f.tools.shutdown(this)
	} else {
		f.tools.reboot(this)
	}
	writeEmptyResponse(w, method)
}

// ---------------------------------------------------------------------------------------------
// HostFirewallSystem.UpdateRuleset (not in the simulator; ours)

// updateRulesetRequest is the SOAP envelope of an UpdateRuleset call.
type updateRulesetRequest struct {
	Body struct {
		Req types.UpdateRuleset `xml:"UpdateRuleset"`
	} `xml:"Body"`
}

// serveUpdateRuleset answers HostFirewallSystem.UpdateRuleset as a real host does: the ruleset's
// allowedHosts become the spec's (replaced, not merged); an unknown ruleset id is a NotFound fault;
// an entry that is not an IP address, or a network whose prefix length does not fit it, is an
// InvalidArgument fault and changes nothing. The session and the object are checked by the
// simulator itself: the call is passed to it first, and its answer is returned as it is unless it
// is MethodNotFound (the simulator lacks the method, so the call was otherwise valid).
func (f *frontHandler) serveUpdateRuleset(w http.ResponseWriter, r *http.Request, body []byte, this types.ManagedObjectReference) {
	probe := r.Clone(r.Context())
	probe.Body = ioutil.NopCloser(bytes.NewReader(body))
	probe.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, probe)
	if !(rec.Code == http.StatusInternalServerError && bytes.Contains(rec.Body.Bytes(), []byte("MethodNotFoundFault"))) {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	f.sleepDelay("UpdateRuleset")
	fw, ok := simulator.Map.Get(this).(*simulator.HostFirewallSystem)
	if !ok {
		writeSoapFault(w, "", &types.MethodNotFound{Receiver: this, Method: "UpdateRuleset"})
		return
	}
	var req updateRulesetRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		writeSoapFault(w, "cannot read the request: "+err.Error(), &types.InvalidRequest{})
		return
	}
	allowed := req.Body.Req.Spec.AllowedHosts
	for _, ip := range allowed.IpAddress {
		if net.ParseIP(ip) == nil {
			writeSoapFault(w, fmt.Sprintf("%q is not an IP address", ip), &types.InvalidArgument{InvalidProperty: "spec.allowedHosts.ipAddress"})
			return
		}
	}
	for _, n := range allowed.IpNetwork {
		ip := net.ParseIP(n.Network)
		bits := 128
		if ip != nil && ip.To4() != nil {
			bits = 32
		}
		if ip == nil || n.PrefixLength < 0 || int(n.PrefixLength) > bits {
			writeSoapFault(w, fmt.Sprintf("%s/%d is not a network", n.Network, n.PrefixLength), &types.InvalidArgument{InvalidProperty: "spec.allowedHosts.ipNetwork"})
			return
		}
	}
	found := false
	simulator.Map.WithLock(fw, func() {
		if fw.FirewallInfo == nil {
			return
		}
		// A new HostFirewallInfo with its own rulesets: the simulator's starts as a shallow copy
		// of esx.HostFirewallInfo, whose slice is shared.
		info := *fw.FirewallInfo
		info.Ruleset = append([]types.HostFirewallRuleset(nil), fw.FirewallInfo.Ruleset...)
		for i := range info.Ruleset {
			if info.Ruleset[i].Key == req.Body.Req.Id {
				list := allowed
				info.Ruleset[i].AllowedHosts = &list
				found = true
			}
		}
		if found {
			fw.FirewallInfo = &info
		}
	})
	if !found {
		writeSoapFault(w, fmt.Sprintf("the firewall ruleset %q does not exist", req.Body.Req.Id), &types.NotFound{})
		return
	}
	writeEmptyResponse(w, "UpdateRuleset")
}

func (g *guestTools) serveControl(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		g.mu.Lock()
		overrides := make(map[string]guestOverride, len(g.overrides))
		for k, v := range g.overrides {
			overrides[k] = v
		}
		running := []string{}
		for moid, st := range g.vms {
			if vm := lookupVM(types.ManagedObjectReference{Type: "VirtualMachine", Value: moid}); vm != nil && st.running {
				running = append(running, vm.Name)
			}
		}
		g.mu.Unlock()
		sort.Strings(running)
		writeJSON(w, http.StatusOK, map[string]interface{}{"enabled": g.enabled, "overrides": overrides, "toolsRunning": running})
	case http.MethodPost:
		if !g.enabled {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the launcher runs without -guest-tools"})
			return
		}
		_ = r.ParseForm()
		name, ip, tools := r.Form.Get("vm"), r.Form.Get("ip"), r.Form.Get("tools")
		var ov guestOverride
		switch {
		case name == "":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing vm parameter"})
			return
		case ip != "" && tools != "":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "give ip or tools, not both"})
			return
		case tools == "off":
			ov.ToolsOff = true
		case tools != "":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("tools=%q: only tools=off is known", tools)})
			return
		case ip == "none":
			ov.NoIP = true
		case ip != "":
			if _, _, ok := splitAddress(ip); !ok {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("ip=%q: want an IP address, IP/prefix or none", ip)})
				return
			}
			ov.IP = ip
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing ip or tools parameter"})
			return
		}
		g.mu.Lock()
		g.overrides[name] = ov
		for moid, st := range g.vms {
			ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: moid}
			if vm := lookupVM(ref); vm != nil && vm.Name == name {
				g.refreshLocked(ref, st)
			}
		}
		g.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"vm": name, "override": ov})
	case http.MethodDelete:
		g.mu.Lock()
		n := len(g.overrides)
		g.overrides = map[string]guestOverride{}
		for moid, st := range g.vms {
			g.refreshLocked(types.ManagedObjectReference{Type: "VirtualMachine", Value: moid}, st)
		}
		g.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"removed": n})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
